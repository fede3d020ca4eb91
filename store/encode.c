/*
 * encode.c: how dt-store writes JSON text (see encode.h).
 *
 * A record's dt_settle element is written as text straight away, not
 * built as a JSON value first: at a hundred thousand records that
 * value's allocations cost more than the rest of dt-store.  And what
 * the status line holds already is copied into the element, not encoded
 * a second time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "encode.h"

/* Makes room for need more bytes in b.  Returns 0 or -1. */
int
dt_buf_room(struct dt_buf *b, size_t need)
{
	size_t cap = b->cap > 0 ? b->cap : 65536;
	char *p;

	if (b->len + need <= b->cap)
		return 0;
	while (cap < b->len + need)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends n bytes.  Returns 0 or -1. */
int
dt_buf_put(struct dt_buf *b, const char *text, size_t n)
{
	if (dt_buf_room(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, text, n);
	b->len += n;
	return 0;
}

/* Appends v as JSON, encoded with flags.  Returns 0 or -1. */
int
dt_buf_json(struct dt_buf *b, const json_t *v, size_t flags)
{
	size_t room, need;

	if (b->p == NULL && dt_buf_room(b, 1) < 0)
		return -1;
	room = b->cap - b->len;
	/* Straight into the buffer; again only when it did not fit. */
	need = json_dumpb(v, b->p + b->len, room, flags);
	if (need > room) {
		if (dt_buf_room(b, need) < 0)
			return -1;
		need = json_dumpb(v, b->p + b->len, need, flags);
	}
	if (need == 0)
		return -1;
	b->len += need;
	return 0;
}

/* Appends ,"key":n for a whole number n >= 0.  Returns 0 or -1. */
int
dt_buf_count(struct dt_buf *b, const char *key, json_int_t n)
{
	char num[32], *p = num + sizeof(num);
	size_t kl = strlen(key), nl;

	do {
		*--p = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	nl = (size_t)(num + sizeof(num) - p);
	if (dt_buf_room(b, kl + nl + 4) < 0)
		return -1;
	b->p[b->len++] = ',';
	b->p[b->len++] = '"';
	memcpy(b->p + b->len, key, kl);
	b->len += kl;
	b->p[b->len++] = '"';
	b->p[b->len++] = ':';
	memcpy(b->p + b->len, p, nl);
	b->len += nl;
	return 0;
}

void
dt_buf_free(struct dt_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Appends ,"key":src[key] when it is a count that fits an integer column. */
static int
put_count(struct dt_buf *b, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 2147483647)
		return 0;
	return dt_buf_count(b, key, json_integer_value(v));
}

/*
 * The encoder below writes exactly what Jansson's does with DT_LINE_FLAGS
 * (compact, keys in their order, the same escapes), without its cost per
 * call: Jansson sets up a table for finding loops for every call and
 * every object or array in it, which made encoding most of dt-store's
 * time.  A parsed record has no loops.  Reals still go through Jansson,
 * for its number formatting.
 */

/* Appends s (n bytes of valid UTF-8) as a JSON string. */
static int
put_string(struct dt_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, run;

	/* Room for the common case: nothing to escape. */
	if (dt_buf_room(b, n + 2) < 0)
		return -1;
	b->p[b->len++] = '"';
	for (i = 0; i < n; i += run) {
		unsigned char c;

		for (run = 0; i + run < n; run++) {
			c = (unsigned char)s[i + run];
			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		if (run > 0) {
			if (dt_buf_put(b, s + i, run) < 0)
				return -1;
			continue;
		}
		/* One byte to escape (UTF-8 puts no byte below 0x80 inside a
		 * longer sequence, so bytes are code points here). */
		c = (unsigned char)s[i];
		run = 1;
		if (dt_buf_room(b, 6) < 0)
			return -1;
		b->p[b->len++] = '\\';
		switch (c) {
		case '"':
		case '\\':
			b->p[b->len++] = (char)c;
			break;
		case '\b':
			b->p[b->len++] = 'b';
			break;
		case '\f':
			b->p[b->len++] = 'f';
			break;
		case '\n':
			b->p[b->len++] = 'n';
			break;
		case '\r':
			b->p[b->len++] = 'r';
			break;
		case '\t':
			b->p[b->len++] = 't';
			break;
		default:
			b->p[b->len++] = 'u';
			b->p[b->len++] = '0';
			b->p[b->len++] = '0';
			b->p[b->len++] = hex[c >> 4];
			b->p[b->len++] = hex[c & 15];
		}
	}
	return dt_buf_put(b, "\"", 1);
}

/* Appends an integer. */
static int
put_int(struct dt_buf *b, json_int_t v)
{
	char num[32], *p = num + sizeof(num);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		*--p = '-';
	return dt_buf_put(b, p, (size_t)(num + sizeof(num) - p));
}

/* Appends v as DT_LINE_FLAGS would encode it. */
static int
put_value(struct dt_buf *b, const json_t *v)
{
	const char *key;
	size_t keylen, i;
	json_t *x;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		rc |= dt_buf_put(b, "{", 1);
		i = 0;
		json_object_keylen_foreach((json_t *)v, key, keylen, x) {
			if (i++ > 0)
				rc |= dt_buf_put(b, ",", 1);
			rc |= put_string(b, key, keylen);
			rc |= dt_buf_put(b, ":", 1);
			rc |= put_value(b, x);
		}
		return rc | dt_buf_put(b, "}", 1);
	case JSON_ARRAY:
		rc |= dt_buf_put(b, "[", 1);
		for (i = 0; i < json_array_size(v); i++) {
			if (i > 0)
				rc |= dt_buf_put(b, ",", 1);
			rc |= put_value(b, json_array_get(v, i));
		}
		return rc | dt_buf_put(b, "]", 1);
	case JSON_STRING:
		return put_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return put_int(b, json_integer_value(v));
	case JSON_TRUE:
		return dt_buf_put(b, "true", 4);
	case JSON_FALSE:
		return dt_buf_put(b, "false", 5);
	case JSON_NULL:
		return dt_buf_put(b, "null", 4);
	default:
		return dt_buf_json(b, v, DT_LINE_FLAGS | JSON_ENCODE_ANY);
	}
}

int
dt_encode_value(struct dt_buf *b, const json_t *v)
{
	return put_value(b, v) != 0 ? -1 : 0;
}

/*
 * Appends rec without its closing brace; see encode.h.  Key by key, not
 * in one call, so that the values dt_encode_item() needs can be found
 * again in what was written.
 */
int
dt_encode_line(struct dt_buf *b, json_t *rec, struct dt_spans *sp)
{
	const char *key;
	size_t keylen;
	json_t *v;
	int rc = 0, first = 1;

	memset(sp, 0, sizeof(*sp));
	rc |= dt_buf_put(b, "{", 1);
	json_object_keylen_foreach(rec, key, keylen, v) {
		size_t start;

		if (!first)
			rc |= dt_buf_put(b, ",", 1);
		first = 0;
		rc |= put_string(b, key, keylen);
		rc |= dt_buf_put(b, ":", 1);
		start = b->len;
		rc |= put_value(b, v);
		if (rc != 0)
			return -1;
		if (keylen == 8 && strcmp(key, "analysis") == 0 &&
		    json_is_object(v)) {
			sp->analysis = start;
			sp->analysis_len = b->len - start;
		} else if (keylen == 5 && strcmp(key, "model") == 0 &&
		    json_is_string(v)) {
			sp->model = start;
			sp->model_len = b->len - start;
		} else if (keylen == 14 && strcmp(key, "prompt_version") == 0 &&
		    json_is_string(v)) {
			sp->version = start;
			sp->version_len = b->len - start;
		}
	}
	return rc;
}

/* Appends ,"key": and the span of the line buffer, when there is one. */
static int
put_span(struct dt_buf *b, const char *head, size_t headlen,
    const struct dt_buf *lines, size_t off, size_t len)
{
	if (len == 0)
		return 0;
	if (dt_buf_put(b, head, headlen) < 0)
		return -1;
	return dt_buf_put(b, lines->p + off, len);
}

/*
 * Appends the dt_settle element of rec; see encode.h.  The element is
 * what dt_settle reads: result fields flat, token counts out of "usage".
 */
int
dt_encode_item(struct dt_buf *b, json_t *rec, const char *sid,
    int sid_is_str, const struct dt_buf *lines, const struct dt_spans *sp)
{
	json_t *analysis = json_object_get(rec, "analysis");
	json_t *error = json_object_get(rec, "error");
	json_t *usage, *v;
	int rc = 0;

	rc |= dt_buf_put(b, "{\"id\":", 6);
	if (sid_is_str)
		rc |= put_value(b, json_object_get(rec, "id"));
	else {
		rc |= dt_buf_put(b, "\"", 1);
		rc |= dt_buf_put(b, sid, strlen(sid));
		rc |= dt_buf_put(b, "\"", 1);
	}
	if (json_is_object(error)) {
		json_t *kind = json_object_get(error, "kind");
		json_t *msg = json_object_get(error, "message");

		rc |= dt_buf_put(b, ",\"error\":{\"kind\":", 17);
		if (json_is_string(kind))
			rc |= put_value(b, kind);
		else
			rc |= dt_buf_put(b, "\"bad_record\"", 12);
		rc |= dt_buf_put(b, ",\"message\":", 11);
		if (json_is_string(msg))
			rc |= put_value(b, msg);
		else
			rc |= dt_buf_put(b, "\"\"", 2);
		/* dt_settle parks a record whose error is not retryable. */
		if (json_is_boolean(v = json_object_get(error, "retryable")))
			rc |= json_is_true(v) ?
			    dt_buf_put(b, ",\"retryable\":true", 17) :
			    dt_buf_put(b, ",\"retryable\":false", 18);
		rc |= dt_buf_put(b, "}", 1);
	} else if (!json_is_object(analysis)) {
		/* Nothing to analyze: {"skip":{"reason","message"}}. */
		json_t *skip = json_object_get(rec, "skip");

		rc |= dt_buf_put(b, ",\"skip\":{\"reason\":", 18);
		if (json_is_string(v = json_object_get(skip, "reason")))
			rc |= put_value(b, v);
		else
			rc |= dt_buf_put(b, "\"no_text\"", 9);
		rc |= dt_buf_put(b, ",\"message\":", 11);
		if (json_is_string(v = json_object_get(skip, "message")))
			rc |= put_value(b, v);
		else
			rc |= dt_buf_put(b, "\"\"", 2);
		rc |= dt_buf_put(b, "}", 1);
	} else {
		if (sp->analysis_len > 0)
			rc |= put_span(b, ",\"analysis\":", 12, lines,
			    sp->analysis, sp->analysis_len);
		else {
			rc |= dt_buf_put(b, ",\"analysis\":", 12);
			rc |= put_value(b, analysis);
		}
		rc |= put_span(b, ",\"model\":", 9, lines, sp->model,
		    sp->model_len);
		rc |= put_span(b, ",\"prompt_version\":", 18, lines,
		    sp->version, sp->version_len);
		usage = json_object_get(rec, "usage");
		rc |= put_count(b, usage, "prompt_tokens");
		rc |= put_count(b, usage, "completion_tokens");
		rc |= put_count(b, usage, "total_tokens");
		rc |= put_count(b, rec, "latency_ms");
		if (json_is_number(v = json_object_get(rec, "cost_usd")) ||
		    json_is_number(v = json_object_get(usage, "cost_usd"))) {
			rc |= dt_buf_put(b, ",\"cost_usd\":", 12);
			rc |= put_value(b, v);
		}
	}
	rc |= dt_buf_put(b, "}", 1);
	return rc != 0 ? -1 : 0;
}

