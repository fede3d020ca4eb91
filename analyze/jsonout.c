/*
 * jsonout.c: compact JSON in json_dumps's format; see jsonout.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "utf8.h"

#define MAX_DEPTH 2048          /* json_dumps's limit */

static int
reserve(struct dt_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->cap - b->len >= n)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		if (cap > (size_t)-1 / 2)
			return -1;
		cap *= 2;
	}
	if ((p = realloc(b->s, cap)) == NULL)
		return -1;
	b->s = p;
	b->cap = cap;
	return 0;
}

static int
put_string(struct dt_buf *b, const char *s, size_t n)
{
	if (n > ((size_t)-1 - 2) / 6 || reserve(b, 6 * n + 2) < 0)
		return -1;
	b->len += json_quote(b->s + b->len, s, n);
	return 0;
}

static int
put_bytes(struct dt_buf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	return 0;
}

static int
put_integer(struct dt_buf *b, json_int_t v)
{
	char d[24];
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;
	int i = (int)sizeof(d);

	do
		d[--i] = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		d[--i] = '-';
	return put_bytes(b, d + i, sizeof(d) - (size_t)i);
}

/*
 * A real as Jansson's jsonp_dtostr() writes it with precision 15: "%.15g",
 * ".0" added when that looks like an integer, and the exponent without
 * '+' or leading zeros.  (dt-analyze never sets a locale, so the decimal
 * point is '.'.)
 */
static int
put_real(struct dt_buf *b, double v)
{
	char buf[64], *e, *from;
	int n = snprintf(buf, sizeof(buf), "%.15g", v);

	if (n < 0 || (size_t)n >= sizeof(buf) - 3)
		return -1;
	if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(buf, 'e')) != NULL) {
		e++;
		from = e + 1;
		if (*e == '-')
			e++;
		while (*from == '0')
			from++;
		if (from != e) {
			memmove(e, from, (size_t)(buf + n - from) + 1);
			n -= (int)(from - e);
		}
	}
	return put_bytes(b, buf, (size_t)n);
}

static int
put_value(struct dt_buf *b, const json_t *v, int depth)
{
	size_t i, n;
	void *it;
	int first = 1;

	if (v == NULL || depth > MAX_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (put_bytes(b, "{", 1) < 0)
			return -1;
		for (it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it)) {
			if ((!first && put_bytes(b, ",", 1) < 0) ||
			    put_string(b, json_object_iter_key(it),
			    json_object_iter_key_len(it)) < 0 ||
			    put_bytes(b, ":", 1) < 0 ||
			    put_value(b, json_object_iter_value(it),
			    depth + 1) < 0)
				return -1;
			first = 0;
		}
		return put_bytes(b, "}", 1);
	case JSON_ARRAY:
		if (put_bytes(b, "[", 1) < 0)
			return -1;
		n = json_array_size(v);
		for (i = 0; i < n; i++)
			if ((i > 0 && put_bytes(b, ",", 1) < 0) ||
			    put_value(b, json_array_get(v, i), depth + 1) < 0)
				return -1;
		return put_bytes(b, "]", 1);
	case JSON_STRING:
		return put_string(b, json_string_value(v),
		    json_string_length(v));
	case JSON_INTEGER:
		return put_integer(b, json_integer_value(v));
	case JSON_REAL:
		return put_real(b, json_real_value(v));
	case JSON_TRUE:
		return put_bytes(b, "true", 4);
	case JSON_FALSE:
		return put_bytes(b, "false", 5);
	default:
		return put_bytes(b, "null", 4);
	}
}

int
dt_json_append(struct dt_buf *b, const json_t *v)
{
	size_t len = b->len;

	if (put_value(b, v, 0) < 0) {
		b->len = len;
		return -1;
	}
	return 0;
}

int
dt_json_append_byte(struct dt_buf *b, char c)
{
	return put_bytes(b, &c, 1);
}

int
dt_json_append_raw(struct dt_buf *b, const char *s, size_t n)
{
	return put_bytes(b, s, n);
}

int
dt_json_append_member(struct dt_buf *b, const char *key, const json_t *v)
{
	size_t len = b->len;

	if (put_string(b, key, strlen(key)) < 0 ||
	    put_bytes(b, ":", 1) < 0 || put_value(b, v, 0) < 0) {
		b->len = len;
		return -1;
	}
	return 0;
}

void
dt_buf_free(struct dt_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}
