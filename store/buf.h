/*
 * buf.h: the growable buffer dt-store writes its JSON text into: a
 * batch's dt_settle elements, its status lines and the queue of lines
 * to write.
 */
#ifndef DT_STORE_BUF_H
#define DT_STORE_BUF_H

#include <stddef.h>

#include <jansson.h>

/* The flags every line is encoded with, as dt_emit() does. */
#define DT_LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A growable byte buffer: zero it to start, free it with dt_buf_free(). */
struct dt_buf {
	char *p;
	size_t len, cap;
};

/*
 * Appends n bytes of text to b, growing it by doubling.  Returns 0, or
 * -1 when out of memory (b->len is then unchanged).
 */
int dt_buf_put(struct dt_buf *b, const char *text, size_t n);

/*
 * Appends v encoded by Jansson's json_dump_callback() with flags
 * (JSON_EMBED: an object's members without its braces).  Returns 0, or
 * -1 when out of memory or v cannot be encoded (b->len is then
 * unchanged).
 */
int dt_buf_json(struct dt_buf *b, const json_t *v, size_t flags);

/* Frees what b holds and zeroes it.  Accepts a zeroed b. */
void dt_buf_free(struct dt_buf *b);

#endif
