/*
 * buf.h: the one growable text buffer.  Start it zeroed; p holds len
 * bytes and a NUL (NULL before the first append).  An append that runs
 * out of memory leaves len as it was, sets oom (which stays set, so a
 * caller may check it once at the end) and returns -1; else 0.
 */
#ifndef DT_BUF_H
#define DT_BUF_H

#include <stddef.h>

struct dt_buf {
	char *p;
	size_t len, cap;
	int oom;
};

/* Append the n bytes at s, the string s, printf's output. */
int dt_buf_add(struct dt_buf *b, const char *s, size_t n);
int dt_buf_puts(struct dt_buf *b, const char *s);
int dt_buf_printf(struct dt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Frees what b holds and zeroes it.  Accepts a zeroed b and NULL. */
void dt_buf_free(struct dt_buf *b);

#endif
