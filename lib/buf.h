/*
 * buf.h: the one growable text buffer: JSON, report text, queued output.
 */
#ifndef DT_BUF_H
#define DT_BUF_H

#include <stddef.h>

#include <jansson.h>

/*
 * A growable byte buffer: zero it to start ({0} or memset), free it with
 * dt_buf_free().  p holds len bytes followed by a NUL (p is NULL until
 * the first append).  An append that runs out of memory leaves len as
 * it was, sets oom and returns -1; oom stays set, so a caller that
 * writes many pieces may check it once at the end, while one that
 * rewinds len after a failure and goes on may ignore it.
 */
struct dt_buf {
	char *p;
	size_t len, cap;
	int oom;
};

/* Appends the n bytes at s.  Returns 0, or -1 when out of memory. */
int dt_buf_add(struct dt_buf *b, const char *s, size_t n);

/* Appends the string s.  Returns 0, or -1 when out of memory. */
int dt_buf_puts(struct dt_buf *b, const char *s);

/* Appends printf's output.  Returns 0, or -1 when out of memory. */
int dt_buf_printf(struct dt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Appends v encoded by Jansson's json_dump_callback() with flags
 * (JSON_EMBED: an object's members without its braces).  Returns 0, or
 * -1 when out of memory or v cannot be encoded (len is then unchanged).
 */
int dt_buf_json(struct dt_buf *b, const json_t *v, size_t flags);

/* Frees what b holds and zeroes it.  Accepts a zeroed b and NULL. */
void dt_buf_free(struct dt_buf *b);

#endif
