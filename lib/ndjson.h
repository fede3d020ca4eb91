/*
 * ndjson.h: newline-delimited JSON in and out.
 *
 * The reader streams stdin or a list of files a line at a time, with a
 * longest line, so memory stays flat however long the input.  Blank
 * lines are skipped.  A line too long, not UTF-8, not JSON or not an
 * object is a bad line: logged as a warning with its place
 * ("<stdin>:42: invalid JSON: ..."), counted, and handed to the caller
 * as DT_NDJSON_BAD so a stage can write an error record for it.
 */
#ifndef DT_NDJSON_H
#define DT_NDJSON_H

#include <stddef.h>
#include <jansson.h>

#define DT_NDJSON_MAX_LINE_DEFAULT (1024L * 1024L)

/* How dt_emit() encodes a record, for a stage that measures a line. */
#define DT_LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

enum {
	DT_NDJSON_EOF = 0,    /* no more input */
	DT_NDJSON_RECORD = 1, /* *rec holds a new reference to an object */
	DT_NDJSON_BAD = 2,    /* a bad line; see dt_reader_error() */
	DT_NDJSON_ERROR = -1  /* an input file could not be opened or read */
};

struct dt_reader;

/*
 * Returns a reader over the files paths[0..n-1] in order, or stdin when
 * n is 0 ("-" names stdin too), accepting lines of max_line bytes (0:
 * DT_NDJSON_MAX_LINE_DEFAULT); NULL when out of memory.  Free it with
 * dt_reader_free().
 */
struct dt_reader *dt_reader_new(char **paths, int n, size_t max_line);

/*
 * Reads the next record: on DT_NDJSON_RECORD *rec is a new reference,
 * else NULL.  A bad line or a file that cannot be read was logged and
 * counted; the next call goes on after it.
 */
int dt_reader_next(struct dt_reader *r, json_t **rec);

/* Where the last line came from: "<stdin>:42" or "runs/a.ndjson:7". */
const char *dt_reader_where(const struct dt_reader *r);

/* Why the last line was bad ("invalid JSON: ..."), else "". */
const char *dt_reader_error(const struct dt_reader *r);

/*
 * The start of the last bad line, at most 256 bytes of valid UTF-8
 * (U+FFFD for a byte that is not), else "".  Valid until the next call.
 */
const char *dt_reader_excerpt(const struct dt_reader *r);

/* Counts of records, bad lines and bad files so far. */
unsigned long dt_reader_nrecords(const struct dt_reader *r);
unsigned long dt_reader_nbad(const struct dt_reader *r);
unsigned long dt_reader_nfail(const struct dt_reader *r);

/*
 * Waits up to timeout_ms (-1: forever) for input.  Returns 1 when
 * dt_reader_next() would not block, 0 on timeout: for a stage that
 * sends a batch when its input goes quiet.
 */
int dt_reader_wait(struct dt_reader *r, int timeout_ms);

/* Frees the reader and closes its files.  Accepts NULL. */
void dt_reader_free(struct dt_reader *r);

/*
 * Writes rec (borrowed) to stdout as one line, at once.  Returns 0, or
 * -1 when stdout cannot be written (EPIPE silently, another error
 * logged); every later call then returns -1 too.
 */
int dt_emit(json_t *rec);

/* 0 while output is fine, DT_EXIT_PIPE after EPIPE, else DT_EXIT_IOERR. */
int dt_out_status(void);

/* Ignores SIGPIPE, so a reader gone is EPIPE.  Call once from main(). */
void dt_out_init(void);

#endif
