/*
 * buf.c: dt-store's growable buffer (see buf.h).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"

int
dt_buf_put(struct dt_buf *b, const char *text, size_t n)
{
	size_t cap = b->cap > 0 ? b->cap : 65536;
	char *p;

	if (b->len + n > b->cap) {
		while (cap < b->len + n)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, text, n);
	b->len += n;
	return 0;
}

static int
put_cb(const char *text, size_t n, void *b)
{
	return dt_buf_put(b, text, n);
}

int
dt_buf_json(struct dt_buf *b, const json_t *v, size_t flags)
{
	size_t len = b->len;

	if (json_dump_callback(v, put_cb, b, flags | JSON_ENCODE_ANY) < 0) {
		b->len = len;
		return -1;
	}
	return 0;
}

void
dt_buf_free(struct dt_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
