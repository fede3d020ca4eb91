/*
 * ndjson.h: newline-delimited JSON in and out.  The reader streams files
 * or stdin a line at a time up to a longest line, skipping blank lines
 * and a byte order mark.  A bad line is logged with its place
 * ("<stdin>:42: invalid JSON: ...") and comes back as an error record.
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
	DT_NDJSON_BAD = 2,    /* a bad line: *rec is its error record */
	DT_NDJSON_ERROR = -1  /* an input file could not be opened or read */
};

struct dt_reader;

/*
 * Returns a reader over paths[0..n-1], or stdin when n is 0 ("-" too),
 * with lines of max_line bytes (0: the default); NULL when out of memory.
 */
struct dt_reader *dt_reader_new(char **paths, int n, size_t max_line);

/*
 * Reads the next record into *rec, new (NULL at the end or on an error).
 * A bad line's is {"error":{"kind":"bad_record","message","retryable"},
 * "input":{"where","excerpt"}}, the excerpt its first 256 bytes as UTF-8.
 */
int dt_reader_next(struct dt_reader *r, json_t **rec);

/* Where the last line came from: "<stdin>:42" or "runs/a.ndjson:7". */
const char *dt_reader_where(const struct dt_reader *r);

/* Why the last line was bad ("invalid JSON: ..."), else "". */
const char *dt_reader_error(const struct dt_reader *r);

/* Waits up to timeout_ms (-1: ever) for input; 1, or 0 on a timeout. */
int dt_reader_wait(struct dt_reader *r, int timeout_ms);

/* Frees the reader and closes its files.  Accepts NULL. */
void dt_reader_free(struct dt_reader *r);

/* Writes rec as one line in one write; 0, or -1 since an error. */
int dt_emit(json_t *rec);

/* 0 while output is fine, DT_EXIT_PIPE after EPIPE, else DT_EXIT_IOERR. */
int dt_out_status(void);

/* Ignores SIGPIPE, so a reader gone is EPIPE.  Call once from main(). */
void dt_out_init(void);

#endif
