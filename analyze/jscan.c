/*
 * jscan.c: dt-analyze's JSON scanner (jscan.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "utf8.h"

static int
hex4(const char *p, unsigned *v)
{
	unsigned x = 0;
	int i;

	for (i = 0; i < 4; i++) {
		x <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			x |= (unsigned)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			x |= (unsigned)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			x |= (unsigned)(p[i] - 'A' + 10);
		else
			return -1;
	}
	*v = x;
	return 0;
}

/* Printable ASCII but '"' and '\\': what a string holds as it is. */
static const unsigned char plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	[0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Reads the string at s->p (a '"'); sp gets its content. */
int
js_string(struct js_scan *s, struct js_span *sp)
{
	const unsigned char *p = (const unsigned char *)s->p + 1;
	const unsigned char *end = (const unsigned char *)s->end;
	unsigned v, w;
	size_t k;

	sp->s = (const char *)p;
	sp->esc = 0;
	while (p < end) {
		while (p < end && plain[*p])
			p++;
		if (p == end)
			break;
		if (*p == '"') {
			sp->n = (size_t)((const char *)p - sp->s);
			s->p = (const char *)p + 1;
			return 0;
		}
		if (*p < 0x20)
			return -1;
		if (*p != '\\') {
			if ((k = utf8_seq(p, (size_t)(end - p))) == 0)
				return -1;
			p += k;
			continue;
		}
		sp->esc = 1;
		if (end - p < 2)
			return -1;
		if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
			p += 2;
			continue;
		}
		if (p[1] != 'u' || end - p < 6 || hex4((const char *)p + 2,
		    &v) < 0 || v == 0 || (v >= 0xdc00 && v <= 0xdfff))
			return -1;
		p += 6;
		if (v >= 0xd800 && v <= 0xdbff) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    hex4((const char *)p + 2, &w) < 0 || w < 0xdc00 ||
			    w > 0xdfff)
				return -1;
			p += 6;
		}
	}
	return -1;
}

/*
 * Decodes a string js_string() accepted into out (sp->n + 1 bytes: a
 * decoded string is never longer).  Returns its length; out ends in NUL.
 */
size_t
js_decode(const struct js_span *sp, char *out)
{
	const char *p = sp->s, *end = sp->s + sp->n;
	size_t o = 0;
	unsigned v, w;

	if (!sp->esc) {
		memcpy(out, sp->s, sp->n);
		out[sp->n] = '\0';
		return sp->n;
	}
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));

		if (bs == NULL)
			bs = end;
		memcpy(out + o, p, (size_t)(bs - p));
		o += (size_t)(bs - p);
		if ((p = bs) == end)
			break;
		switch (p[1]) {
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u':
			(void)hex4(p + 2, &v);
			if (v >= 0xd800 && v <= 0xdbff) {
				(void)hex4(p + 8, &w);
				o += utf8_put(out + o, 0x10000 +
				    ((unsigned long)(v - 0xd800) << 10) +
				    (w - 0xdc00));
				p += 12;
			} else {
				o += utf8_put(out + o, v);
				p += 6;
			}
			continue;
		default:
			out[o++] = p[1];
			break;
		}
		p += 2;
	}
	out[o] = '\0';
	return o;
}

/* A new copy of the decoded string sp, or NULL when out of memory. */
char *
js_span_dup(const struct js_span *sp)
{
	char *out = malloc(sp->n + 1);

	if (out != NULL)
		js_decode(sp, out);
	return out;
}

/*
 * Reads the number at s->p.  *real tells a number with a fraction or an
 * exponent (Jansson's real) from an integer.  With want set, the value
 * goes to *iv or *dv.  A number out of range fails, as in Jansson; only
 * one with an exponent or of 19 digits or more can be.
 */
int
js_number(struct js_scan *s, int want, int *real, long long *iv, double *dv)
{
	const char *p = s->p, *end = s->end;
	char buf[64], *e;
	int exp = 0;
	size_t n;

	*real = 0;
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return -1;
	if (p < end && *p == '.') {
		if (++p == end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		*real = 1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || *p < '0' || *p > '9')
			return -1;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		*real = exp = 1;
	}
	if ((n = (size_t)(p - s->p)) >= sizeof(buf))
		return -1;
	if (!*real && n < 19) {
		/* Up to 18 digits cannot overflow: no strtoll needed. */
		if (want) {
			const char *q = s->p + (*s->p == '-');
			long long v = 0;

			while (q < p)
				v = v * 10 + (*q++ - '0');
			*iv = *s->p == '-' ? -v : v;
		}
		s->p = p;
		return 0;
	}
	if (*real && !exp && !want) {
		/* Under 64 characters without an exponent: in range. */
		s->p = p;
		return 0;
	}
	memcpy(buf, s->p, n);
	buf[n] = '\0';
	errno = 0;
	if (*real) {
		*dv = strtod(buf, &e);
		if ((*dv == HUGE_VAL || *dv == -HUGE_VAL) && errno == ERANGE)
			return -1;
	} else {
		*iv = strtoll(buf, &e, 10);
		if (errno == ERANGE)
			return -1;
	}
	s->p = p;
	return 0;
}

int
js_literal(struct js_scan *s, const char *w, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/* Reads ws, then ',' (1, more to come) or close (0, the end). */
int
js_more(struct js_scan *s, char close)
{
	js_ws(s);
	if (s->p < s->end && *s->p == ',') {
		s->p++;
		js_ws(s);
		return 1;
	}
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	return -1;
}

/* Reads a member's key and the ':' after it. */
int
js_key(struct js_scan *s, struct js_span *k)
{
	if (s->p >= s->end || *s->p != '"' || js_string(s, k) < 0 || k->esc)
		return -1;
	js_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return -1;
	s->p++;
	js_ws(s);
	return 0;
}

/* Reads the object or array at s->p. */
static int
scan_container(struct js_scan *s)
{
	char close = *s->p == '{' ? '}' : ']';
	struct js_span k;
	int rc;

	if (++s->depth > JS_DEPTH)
		return -1;
	s->p++;
	js_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	do {
		if (close == '}' && js_key(s, &k) < 0)
			return -1;
		if (js_value(s) < 0)
			return -1;
	} while ((rc = js_more(s, close)) == 1);
	s->depth--;
	return rc;
}

int
js_value(struct js_scan *s)
{
	struct js_span sp;
	long long iv;
	double dv;
	int real;

	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '"':
		return js_string(s, &sp);
	case '{':
	case '[':
		return scan_container(s);
	case 't':
		return js_literal(s, "true", 4);
	case 'f':
		return js_literal(s, "false", 5);
	case 'n':
		return js_literal(s, "null", 4);
	default:
		return js_number(s, 0, &real, &iv, &dv);
	}
}

/*
 * Skips the string at p (a '"'), in text the scanner has checked (so the
 * closing quote is there), and returns the position after it; sp gets
 * its content.
 */
const char *
js_skip_string(const char *p, struct js_span *sp)
{
	const unsigned char *u = (const unsigned char *)p + 1;

	sp->s = (const char *)u;
	sp->esc = 0;
	for (;;) {
		while (plain[*u] || *u >= 0x80)
			u++;
		if (*u == '"')
			break;
		sp->esc = 1;
		u += 2;         /* a '\\' and what it escapes */
	}
	sp->n = (size_t)((const char *)u - sp->s);
	return (const char *)u + 1;
}

/* Skips the value at s->p, in text the scanner has checked. */
void
js_skip_value(struct js_scan *s)
{
	const char *p = s->p;
	struct js_span sp;
	int depth = 0;

	do {
		switch (*p) {
		case '"':
			p = js_skip_string(p, &sp);
			break;
		case '{':
		case '[':
			depth++;
			p++;
			break;
		case '}':
		case ']':
			depth--;
			p++;
			break;
		default:
			if (depth > 0) {
				p++;    /* , : white space, numbers, literals */
				break;
			}
			/* A number or a literal ends where the value does. */
			p += strcspn(p, "\"{}[],");
			while (p > s->p && (p[-1] == ' ' || p[-1] == '\n' ||
			    p[-1] == '\r' || p[-1] == '\t'))
				p--;
			break;
		}
	} while (depth > 0);
	s->p = p;
}

int
js_walk_begin(struct js_walk *w, const struct js_span *v, char open)
{
	if (v->s == NULL || v->n == 0 || v->s[0] != open)
		return -1;
	w->s.p = v->s + 1;
	w->s.end = v->s + v->n;
	w->s.depth = 0;
	w->close = open == '{' ? '}' : ']';
	w->started = 0;
	js_ws(&w->s);
	return 0;
}

int
js_walk_next(struct js_walk *w, struct js_span *k, struct js_span *v)
{
	struct js_scan *s = &w->s;

	if (!w->started) {
		w->started = 1;
		if (*s->p == w->close)
			return 0;
	} else {
		js_ws(s);
		if (*s->p != ',')
			return 0;
		s->p++;
		js_ws(s);
	}
	if (w->close == '}') {
		s->p = js_skip_string(s->p, k);
		js_ws(s);
		s->p++;         /* the ':' */
		js_ws(s);
	}
	v->s = s->p;
	js_skip_value(s);
	v->n = (size_t)(s->p - v->s);
	return 1;
}

/*
 * Finds the members keys[0..n-1] of the object v in one walk: vals[i]
 * gets the value of the last member named keys[i] (as json_object_get
 * finds it), or s NULL when there is none.  Returns 0, or -1 when v is
 * no object.
 */
int
js_pick(const struct js_span *v, const char *const *keys, struct js_span *vals,
    int n)
{
	struct js_walk w;
	struct js_span k, m;
	int i;

	for (i = 0; i < n; i++)
		vals[i].s = NULL;
	if (js_walk_begin(&w, v, '{') < 0)
		return -1;
	while (js_walk_next(&w, &k, &m) == 1)
		for (i = 0; i < n; i++)
			if (k.s[0] == keys[i][0] &&
			    strncmp(k.s, keys[i], k.n) == 0 &&
			    keys[i][k.n] == '\0')
				vals[i] = m;
	return 0;
}

/* The value of the last member key of the object v, as json_object_get. */
int
js_get(const struct js_span *v, const char *key, struct js_span *out)
{
	return js_pick(v, &key, out, 1) == 0 && out->s != NULL;
}

/* The string v (a value's text) in *sp; -1 when v is no string. */
int
js_as_string(const struct js_span *v, struct js_span *sp)
{
	if (v->n == 0 || v->s[0] != '"')
		return -1;
	(void)js_skip_string(v->s, sp);
	return 0;
}

/* A new copy of the string v, or NULL when v is no string. */
char *
js_string_dup(const struct js_span *v)
{
	struct js_span sp;

	return js_as_string(v, &sp) < 0 ? NULL : js_span_dup(&sp);
}

/* 1 when v is the string lit (which holds no escapes). */
int
js_string_is(const struct js_span *v, const char *lit)
{
	struct js_span sp;
	char *d;
	int eq;

	if (js_as_string(v, &sp) < 0)
		return 0;
	if (!sp.esc)
		return sp.n == strlen(lit) && memcmp(sp.s, lit, sp.n) == 0;
	if ((d = js_span_dup(&sp)) == NULL)
		return 0;
	eq = strcmp(d, lit) == 0;
	free(d);
	return eq;
}

/* v as a number: 0 when it is none; *real as in js_number(). */
int
js_as_number(const struct js_span *v, int *real, long long *iv, double *dv)
{
	struct js_scan s = {v->s, v->s + v->n, 0};

	if (v->n == 0 || !(v->s[0] == '-' || (v->s[0] >= '0' &&
	    v->s[0] <= '9')))
		return 0;
	return js_number(&s, 1, real, iv, dv) == 0;
}

/* The integer v, 0 when it is none (a missing member included). */
long long
js_as_int(const struct js_span *v)
{
	long long iv;
	double dv;
	int real;

	if (v->s == NULL || !js_as_number(v, &real, &iv, &dv) || real)
		return 0;
	return iv;
}
int
js_object(const char *text, size_t len, const char *const *keys, int n,
    struct js_span *vals, int *seen, struct js_span *obj)
{
	struct js_scan s = {text, text + len, 0};
	struct js_walk w;
	struct js_span k, v;
	int i;

	js_ws(&s);
	obj->s = s.p;
	if (s.p >= s.end || *s.p != '{' || js_value(&s) < 0)
		return -1;
	obj->n = (size_t)(s.p - obj->s);
	obj->esc = 0;
	js_ws(&s);
	if (s.p != s.end)
		return -1;
	for (i = 0; i < n; i++) {
		vals[i].s = NULL;
		seen[i] = 0;
	}
	(void)js_walk_begin(&w, obj, '{');
	while (js_walk_next(&w, &k, &v) == 1)
		for (i = 0; i < n; i++)
			if (k.s[0] == keys[i][0] &&
			    strncmp(k.s, keys[i], k.n) == 0 &&
			    keys[i][k.n] == '\0') {
				vals[i] = v;
				seen[i]++;
				break;
			}
	return 0;
}
