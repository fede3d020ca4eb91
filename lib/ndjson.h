/*
 * ndjson.h: newline-delimited JSON in and out.
 *
 * The reader streams stdin or a list of files one line at a time with a
 * fixed maximum line length, so memory stays flat however long the input
 * is.  Blank lines are skipped.  A line that is too long, not UTF-8, not
 * JSON or not an object is a bad line: the reader logs it as a warning
 * with its source and line number ("<stdin>:42: invalid JSON: ..."),
 * counts it and hands it to the caller as DT_NDJSON_BAD so a stage can
 * turn it into an error record.  Reading goes on after it.
 */
#ifndef DT_NDJSON_H
#define DT_NDJSON_H

#include <stddef.h>
#include <jansson.h>

#define DT_NDJSON_MAX_LINE_DEFAULT (1024L * 1024L)

/*
 * How dt_emit() encodes a record; a stage that writes or measures a line
 * itself uses the same flags.
 */
#define DT_LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

enum {
	DT_NDJSON_EOF = 0,    /* no more input */
	DT_NDJSON_RECORD = 1, /* *rec holds a new reference to an object */
	DT_NDJSON_BAD = 2,    /* a bad line; see dt_reader_error() */
	DT_NDJSON_ERROR = -1  /* an input file could not be opened or read */
};

struct dt_reader;

/*
 * Opens a reader over the files in paths[0..n-1] in order, or stdin when
 * n is 0; "-" names stdin.  max_line is the longest line accepted, in
 * bytes without the newline (0 means DT_NDJSON_MAX_LINE_DEFAULT).
 * Returns a new reader (free with dt_reader_free) or NULL when out of
 * memory.  Files are opened lazily by dt_reader_next().
 */
struct dt_reader *dt_reader_new(char **paths, int n, size_t max_line);

/*
 * Reads the next record.  On DT_NDJSON_RECORD *rec is a new reference the
 * caller must json_decref.  On DT_NDJSON_BAD the line was already logged
 * and counted, and *rec is NULL.  On DT_NDJSON_ERROR a file could not be
 * opened or read: it was logged, counted, and the next call goes on with
 * the next file.
 */
int dt_reader_next(struct dt_reader *r, json_t **rec);

/* Where the last line came from: "<stdin>:42" or "runs/a.ndjson:7". */
const char *dt_reader_where(const struct dt_reader *r);

/* The reason the last line was bad ("invalid JSON: ..."), else "". */
const char *dt_reader_error(const struct dt_reader *r);

/*
 * The last bad line's start, at most 256 bytes, as valid UTF-8 (invalid
 * bytes replaced by U+FFFD), so an error record can carry what was there.
 * Borrowed; valid until the next dt_reader_next() call.
 */
const char *dt_reader_excerpt(const struct dt_reader *r);

/* Counts since the reader was opened. */
unsigned long dt_reader_nrecords(const struct dt_reader *r);
unsigned long dt_reader_nbad(const struct dt_reader *r);   /* bad lines */
unsigned long dt_reader_nfail(const struct dt_reader *r);  /* bad files */

/*
 * Waits up to timeout_ms (-1: forever) for input: returns 1 when a call
 * to dt_reader_next() would not block (a line is buffered, input is
 * readable, or end of input was reached), 0 on timeout.  For stages
 * that must flush a batch when input goes quiet.
 */
int dt_reader_wait(struct dt_reader *r, int timeout_ms);

/* Frees the reader and closes its files.  Accepts NULL. */
void dt_reader_free(struct dt_reader *r);

/*
 * Writes rec to stdout as one compact line and flushes it, so a pipeline
 * streams record by record.  Does not steal the reference.  Returns 0,
 * or -1 when stdout cannot be written: EPIPE (the reader went away) is
 * silent, any other error is logged once.  After a failure every later
 * call returns -1 at once; dt_out_status() says what to exit with.
 */
int dt_emit(json_t *rec);

/*
 * Returns 0 while output is fine, DT_EXIT_PIPE after EPIPE, and
 * DT_EXIT_IOERR after any other write error.
 */
int dt_out_status(void);

/*
 * Ignores SIGPIPE so that a vanished reader shows up as EPIPE from
 * write and the program can end cleanly.  Call once from main().
 */
void dt_out_init(void);

#endif
