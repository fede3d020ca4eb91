/*
 * scan.c: reading records fast.
 *
 * dt-report reads millions of lines and needs a handful of fields from
 * each, so instead of building a Jansson tree per line it validates each
 * line with a small JSON scanner that allocates nothing and keeps only
 * what the tally uses: strings are unescaped into one arena the size of
 * a line, numbers converted only where they are wanted.  A line is
 * tallied only once it has been read whole and found valid, so a bad
 * line counts for nothing but itself.  Lines are read, numbered and
 * rejected as lib/ndjson.c does, with the same messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "ndjson.h"
#include "report.h"
#include "utf8.h"

#define INBUF_SIZE ((size_t)256 * 1024)
#define MAX_DEPTH 512
#define KEY_MAX 64

/* Bit tricks: is any byte of the 64-bit w zero, or below n (n <= 128)? */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HASZERO(w) (((w) - ONES) & ~(w) & HIGHS)
#define HASLESS(w, n) (((w) - ONES * (n)) & ~(w) & HIGHS)

/* Is the key k (n bytes) the literal lit? */
#define IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), (n)) == 0)

struct sc {
	const unsigned char *start, *p, *end;
	char *arena;            /* unescaped strings */
	size_t alen;
	int depth;
	const char *err;        /* what was wrong, once it was */
	size_t errpos;
	const char *const *names; /* analysis fields wanted */
	size_t nlen[DT_RPT_MAX_FIELDS];
	int nnames;
	struct dt_rpt_rec *rec;
};

static int
fail(struct sc *s, const char *what)
{
	if (s->err == NULL) {
		s->err = what;
		s->errpos = (size_t)(s->p - s->start);
	}
	return -1;
}

static void
ws(struct sc *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	    *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * Reads a string at s->p (on its opening quote).  With out, the
 * unescaped text goes to the arena, NUL-terminated, or into key[keylen]
 * for a key (a longer key is marked with *keylen = KEY_MAX + 1).  The
 * line was checked for UTF-8 already.
 */
static int
string(struct sc *s, struct dt_rpt_span *out, char *key, size_t *keylen)
{
	const unsigned char *p = s->p + 1, *end = s->end, *run;
	char *o = NULL;
	size_t kn = 0;

	if (out != NULL)
		o = s->arena + s->alen;
	for (;;) {
		run = p;
		for (;;) {
			size_t k;

			/*
			 * Eight bytes at a time while none is '"', '\\', a
			 * control or beyond ASCII.
			 */
			while (end - p >= 8) {
				uint64_t w;

				memcpy(&w, p, 8);
				if (HASZERO(w ^ 0x2222222222222222ULL) |
				    HASZERO(w ^ 0x5C5C5C5C5C5C5C5CULL) |
				    HASLESS(w, 0x20) | (w & HIGHS))
					break;
				p += 8;
			}
			while (p < end && *p != '"' && *p != '\\' &&
			    *p >= 0x20 && *p < 0x80)
				p++;
			if (p >= end || *p < 0x80)
				break;
			/* Two-byte characters (Cyrillic, Latin-1) inline. */
			while (end - p >= 2 && p[0] >= 0xC2 && p[0] <= 0xDF &&
			    (p[1] & 0xC0) == 0x80)
				p += 2;
			if (p >= end || *p < 0x80)
				continue;
			if ((k = utf8_seq(p, (size_t)(end - p))) == 0) {
				s->p = p;
				return fail(s, "not valid UTF-8");
			}
			p += k;
		}
		if (o != NULL) {
			memcpy(o, run, (size_t)(p - run));
			o += p - run;
		} else if (key != NULL) {
			size_t n = (size_t)(p - run);

			if (kn + n <= KEY_MAX)
				memcpy(key + kn, run, n);
			kn += n;
		}
		if (p >= end) {
			s->p = p;
			return fail(s, "premature end of input in a string");
		}
		if (*p == '"')
			break;
		if (*p < 0x20) {
			s->p = p;
			return fail(s, "control character in a string");
		}
		/* An escape. */
		if (p + 1 >= end) {
			s->p = p;
			return fail(s, "premature end of input in a string");
		}
		{
			unsigned c;
			char tmp[4];
			size_t n;

			switch (p[1]) {
			case '"': case '\\': case '/':
				c = p[1];
				p += 2;
				break;
			case 'b':
				c = '\b';
				p += 2;
				break;
			case 'f':
				c = '\f';
				p += 2;
				break;
			case 'n':
				c = '\n';
				p += 2;
				break;
			case 'r':
				c = '\r';
				p += 2;
				break;
			case 't':
				c = '\t';
				p += 2;
				break;
			case 'u':
				if (end - p < 6 || hex4(p + 2, &c) < 0) {
					s->p = p;
					return fail(s, "invalid \\u escape");
				}
				p += 6;
				if (c >= 0xDC00 && c <= 0xDFFF) {
					s->p = p - 6;
					return fail(s, "invalid Unicode escape "
					    "(lone low surrogate)");
				}
				if (c >= 0xD800 && c <= 0xDBFF) {
					unsigned lo;

					if (end - p < 6 || p[0] != '\\' ||
					    p[1] != 'u' ||
					    hex4(p + 2, &lo) < 0 ||
					    lo < 0xDC00 || lo > 0xDFFF) {
						s->p = p - 6;
						return fail(s, "invalid "
						    "Unicode escape (lone "
						    "high surrogate)");
					}
					c = 0x10000 + ((c - 0xD800) << 10) +
					    (lo - 0xDC00);
					p += 6;
				}
				break;
			default:
				s->p = p;
				return fail(s, "invalid escape");
			}
			n = utf8_put(tmp, c);
			if (o != NULL) {
				memcpy(o, tmp, n);
				o += n;
			} else if (key != NULL) {
				if (kn + n <= KEY_MAX)
					memcpy(key + kn, tmp, n);
				kn += n;
			}
		}
	}
	s->p = p + 1;
	if (out != NULL) {
		out->s = s->arena + s->alen;
		out->n = (size_t)(o - out->s);
		*o++ = '\0';
		s->alen = (size_t)(o - s->arena);
	}
	if (key != NULL) {
		if (kn > KEY_MAX)
			kn = KEY_MAX + 1;
		else
			key[kn] = '\0';
		*keylen = kn;
	}
	return 0;
}

static int
digits(struct sc *s)
{
	const unsigned char *q = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > q ? 0 : fail(s, "invalid number");
}

/* Reads a number; its value goes to *v when v is not NULL. */
static int
number(struct sc *s, double *v)
{
	const unsigned char *q = s->p;
	int simple = 1, exp = 0;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (digits(s) < 0)
		return -1;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		simple = 0;
		if (digits(s) < 0)
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		simple = 0;
		exp = 1;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s) < 0)
			return -1;
	}
	if (v == NULL)
		return 0;
	if (s->p - q < 17 && (simple || !exp)) {
		/*
		 * At most 15 digits: the mantissa and the power of ten are
		 * exact doubles, so one division rounds as strtod would.
		 */
		static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5,
		    1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
		    1e16};
		const unsigned char *d = q;
		long long x = 0;
		int places = 0, frac = 0;

		if (*d == '-')
			d++;
		for (; d < s->p; d++) {
			if (*d == '.') {
				frac = 1;
				continue;
			}
			x = x * 10 + (*d - '0');
			places += frac;
		}
		*v = (double)x / pow10[places];
		if (*q == '-')
			*v = -*v;
	} else {
		char buf[64];
		size_t n = (size_t)(s->p - q);

		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, q, n);
		buf[n] = '\0';
		*v = strtod(buf, NULL);
	}
	return 0;
}

static int
literal(struct sc *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "invalid token");
	s->p += n;
	return 0;
}

static int value(struct sc *, int (*)(struct sc *, const char *, size_t,
    void *), void *);

/* Reads any value and keeps nothing. */
static int
skip(struct sc *s)
{
	return value(s, NULL, NULL);
}

/*
 * Reads an object; for each member calls on_key with s->p on the value,
 * which must read it.  Without on_key the members are skipped.
 */
/*
 * Reads a key at s->p (on its quote): in place when it has no escape,
 * else unescaped into buf.  *k, *n: the key, not NUL-terminated; n is
 * KEY_MAX + 1 for a longer key.
 */
static int
key(struct sc *s, char *buf, const char **k, size_t *n)
{
	const unsigned char *p = s->p + 1, *end = s->end;

	while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 &&
	    *p < 0x80)
		p++;
	if (p < end && *p == '"') {
		*k = (const char *)s->p + 1;
		*n = (size_t)(p - s->p - 1);
		s->p = p + 1;
		return 0;
	}
	*k = buf;
	return string(s, NULL, buf, n);
}

/*
 * Reads an object; for each member calls on_key with s->p on the value,
 * which must read it.  Without on_key the members are skipped.
 */
static int
object(struct sc *s, int (*on_key)(struct sc *, const char *, size_t,
    void *), void *ctx)
{
	char buf[KEY_MAX + 1];
	const char *k = buf;
	size_t klen = 0;

	s->p++;
	if (++s->depth > MAX_DEPTH)
		return fail(s, "too deeply nested");
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		s->depth--;
		return 0;
	}
	for (;;) {
		if (s->p >= s->end || *s->p != '"')
			return fail(s, "string or '}' expected");
		if ((on_key ? key(s, buf, &k, &klen) :
		    string(s, NULL, NULL, NULL)) < 0)
			return -1;
		ws(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "':' expected");
		s->p++;
		ws(s);
		if (on_key != NULL && klen <= KEY_MAX) {
			if (on_key(s, k, klen, ctx) < 0)
				return -1;
		} else if (skip(s) < 0)
			return -1;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			s->depth--;
			return 0;
		}
		return fail(s, "',' or '}' expected");
	}
}

/* Reads an array, calling on_item (with its index) for each item. */
static int
array(struct sc *s, int (*on_item)(struct sc *, size_t, void *), void *ctx)
{
	size_t i = 0;

	s->p++;
	if (++s->depth > MAX_DEPTH)
		return fail(s, "too deeply nested");
	ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		s->depth--;
		return 0;
	}
	for (;; i++) {
		if ((on_item ? on_item(s, i, ctx) : skip(s)) < 0)
			return -1;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			s->depth--;
			return 0;
		}
		return fail(s, "',' or ']' expected");
	}
}

static int
value(struct sc *s, int (*on_key)(struct sc *, const char *, size_t, void *),
    void *ctx)
{
	if (s->p >= s->end)
		return fail(s, "premature end of input");
	switch (*s->p) {
	case '{':
		return object(s, on_key, ctx);
	case '[':
		return array(s, NULL, NULL);
	case '"':
		return string(s, NULL, NULL, NULL);
	case 't':
		return literal(s, "true");
	case 'f':
		return literal(s, "false");
	case 'n':
		return literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return number(s, NULL);
		return fail(s, "invalid token");
	}
}

/* Typed readers for the fields the tally wants; other types are skipped. */

static int
want_string(struct sc *s, struct dt_rpt_span *out)
{
	if (s->p < s->end && *s->p == '"')
		return string(s, out, NULL, NULL);
	return skip(s);
}

static int
want_number(struct sc *s, double *v, int *has)
{
	if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
		*has = 1;
		return number(s, v);
	}
	return skip(s);
}

static int
is_number_start(const struct sc *s)
{
	return s->p < s->end && (*s->p == '-' || (*s->p >= '0' &&
	    *s->p <= '9'));
}

/* Costs: a number, or an object with total_cost or some *_cost members. */
struct cost {
	double total, sum;
	int has_total, has_sum;
};

static int
on_cost_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct cost *c = ctx;
	double v;

	if (!is_number_start(s))
		return skip(s);
	if (number(s, &v) < 0)
		return -1;
	if (IS(k, n, "total_cost")) {
		c->total = v;
		c->has_total = 1;
	} else if (n > 5 && memcmp(k + n - 5, "_cost", 5) == 0) {
		c->sum += v;
		c->has_sum = 1;
	}
	return 0;
}

static int
cost_value(struct sc *s, double *out, int *has)
{
	struct cost c = {0};

	if (is_number_start(s)) {
		*has = 1;
		return number(s, out);
	}
	if (s->p >= s->end || *s->p != '{')
		return skip(s);
	if (object(s, on_cost_key, &c) < 0)
		return -1;
	if (c.has_total || c.has_sum) {
		*out = c.has_total ? c.total : c.sum;
		*has = 1;
	}
	return 0;
}

static int
on_usage_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct dt_rpt_rec *r = ctx;
	double v;
	int has = 0;

		if (IS(k, n, "cost") || IS(k, n, "cost_usd"))
		return cost_value(s, &r->usage_cost, &r->has_usage_cost);
	if (IS(k, n, "prompt_tokens") || IS(k, n, "input_tokens")) {
		if (want_number(s, &v, &has) < 0)
			return -1;
		if (has && v > 0)
			r->prompt += v;
		return 0;
	}
	if (IS(k, n, "completion_tokens") ||
	    IS(k, n, "output_tokens")) {
		if (want_number(s, &v, &has) < 0)
			return -1;
		if (has && v > 0)
			r->completion += v;
		return 0;
	}
	if (IS(k, n, "total_tokens"))
		return want_number(s, &r->total, &r->has_total);
	return skip(s);
}

static int
on_error_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct dt_rpt_rec *r = ctx;

		if (IS(k, n, "kind"))
		return want_string(s, &r->kind);
	return skip(s);
}

static int
on_counts_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct dt_rpt_rec *r = ctx;
	double v;
	int has = 0, i;

	if (want_number(s, &v, &has) < 0)
		return -1;
	if (!has || n >= sizeof(r->count_names[0]))
		return 0;
	for (i = 0; i < r->ncounts; i++)
		if (strlen(r->count_names[i]) == n &&
		    memcmp(r->count_names[i], k, n) == 0) {
			r->counts[i] = v;       /* a repeated key: the last */
			return 0;
		}
	if (r->ncounts < DT_RPT_REC_COUNTS) {
		memcpy(r->count_names[r->ncounts], k, n);
		r->count_names[r->ncounts][n] = '\0';
		r->counts[r->ncounts++] = v;
	}
	return 0;
}

static int
on_field_item(struct sc *s, size_t i, void *ctx)
{
	struct dt_rpt_rec_field *f = ctx;

	(void)i;
	f->nitems++;
	if (s->p < s->end && *s->p == '"' && f->nvals < DT_RPT_REC_VALUES)
		return string(s, &f->vals[f->nvals++], NULL, NULL);
	return skip(s);
}

static int
on_analysis_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct dt_rpt_rec *r = ctx;
	struct dt_rpt_rec_field *f;
	int i;

	for (i = 0; i < s->nnames; i++)
		if (s->nlen[i] == n && memcmp(s->names[i], k, n) == 0)
			break;
	if (i == s->nnames || s->p >= s->end)
		return skip(s);
	f = &r->fields[i];
	/* A repeated key: the last one counts, as in Jansson. */
	f->present = 0;
	f->nvals = 0;
	f->nitems = 0;
	switch (*s->p) {
	case '"':
		f->present = 1;
		f->type = 's';
		f->nvals = 1;
		return string(s, &f->vals[0], NULL, NULL);
	case '[':
		f->present = 1;
		f->type = 'a';
		return array(s, on_field_item, f);
	case 'n':
		return literal(s, "null");
	default:
		if (is_number_start(s)) {
			f->present = 1;
			f->type = 'n';
			return number(s, &f->num);
		}
		f->present = 1;
		f->type = 'o';
		return skip(s);
	}
}

static int
on_top_key(struct sc *s, const char *k, size_t n, void *ctx)
{
	struct dt_rpt_rec *r = ctx;

		switch (n > 0 ? k[0] : 0) {
	case 'a':
		if (IS(k, n, "analysis")) {
			if (s->p < s->end && *s->p == '{') {
				int i;

				for (i = 0; i < s->nnames; i++)
					r->fields[i].present = 0;
				r->has_analysis = 1;
				return object(s, on_analysis_key, r);
			}
			r->has_analysis = 0;
		}
		break;
	case 'c':
		if (IS(k, n, "counts") && s->p < s->end && *s->p == '{')
			return object(s, on_counts_key, r);
		if (IS(k, n, "cost_usd"))
			return cost_value(s, &r->cost_usd, &r->has_cost_usd);
		break;
	case 'e':
		if (IS(k, n, "error")) {
			r->kind.s = NULL;
			r->has_error = s->p < s->end && *s->p != 'n';
			r->error_is_obj = s->p < s->end && *s->p == '{';
			if (r->error_is_obj)
				return object(s, on_error_key, r);
		}
		break;
	case 'i':
		if (IS(k, n, "id"))
			r->has_id = 1;
		else if (IS(k, n, "interrupted") && s->p < s->end &&
		    *s->p == 't') {
			r->interrupted = 1;
			return literal(s, "true");
		}
		break;
	case 'l':
		if (IS(k, n, "latency_ms"))
			return want_number(s, &r->latency, &r->has_latency);
		break;
	case 'm':
		if (IS(k, n, "message"))
			return want_string(s, &r->message);
		break;
	case 'r':
		if (IS(k, n, "run_id"))
			return want_string(s, &r->run_id);
		break;
	case 's':
		if (IS(k, n, "status")) {
			if (is_number_start(s)) {
				r->status.s = NULL;
				return want_number(s, &r->status_num,
				    &r->has_status_num);
			}
			return want_string(s, &r->status);
		}
		if (IS(k, n, "stage"))
			return want_string(s, &r->stage);
		if (IS(k, n, "started_at"))
			return want_string(s, &r->started_at);
		break;
	case 'u':
		if (IS(k, n, "usage") && s->p < s->end && *s->p == '{') {
			r->has_usage = 1;
			return object(s, on_usage_key, r);
		}
		break;
	}
	return skip(s);
}

static void
rec_clear(struct dt_rpt_rec *r, int nfields)
{
	int i;

	memset(r, 0, offsetof(struct dt_rpt_rec, fields));
	for (i = 0; i < nfields; i++) {
		r->fields[i].present = 0;
		r->fields[i].nvals = 0;
		r->fields[i].nitems = 0;
	}
}

int
dt_rpt_scan_line(const char *line, size_t len, char *arena,
    const char *const *names, int nnames, struct dt_rpt_rec *rec,
    char *err, size_t errlen)
{
	struct sc s;
	int i;

	memset(&s, 0, sizeof(s));
	s.start = s.p = (const unsigned char *)line;
	s.end = s.p + len;
	s.arena = arena;
	s.names = names;
	s.nnames = nnames < DT_RPT_MAX_FIELDS ? nnames : DT_RPT_MAX_FIELDS;
	for (i = 0; i < s.nnames; i++)
		s.nlen[i] = strlen(names[i]);
	s.rec = rec;
	rec_clear(rec, nnames);
	ws(&s);
	if (s.p >= s.end) {
		fail(&s, "premature end of input");
	} else if (*s.p != '{') {
		const char *what = *s.p == '[' ? "an array" : *s.p == '"' ?
		    "a string" : *s.p == 't' || *s.p == 'f' ? "a boolean" :
		    *s.p == 'n' ? "null" : "a number";

		/* Still a JSON value?  Then the complaint is its type. */
		if (value(&s, NULL, NULL) == 0) {
			ws(&s);
			if (s.p == s.end) {
				snprintf(err, errlen,
				    "not a JSON object (got %s)", what);
				return -1;
			}
			fail(&s, "end of input expected");
		}
	} else if (object(&s, on_top_key, rec) == 0) {
		ws(&s);
		if (s.p != s.end)
			fail(&s, "end of input expected");
	}
	if (s.err != NULL) {
		size_t off = utf8_check((const char *)s.start, len);

		/* Bad UTF-8 anywhere is the complaint, as in lib/ndjson.c. */
		if (off != len)
			snprintf(err, errlen, "not valid UTF-8 (byte %zu)",
			    off + 1);
		else
			snprintf(err, errlen, "invalid JSON: %s (column %zu)",
			    s.err, s.errpos + 1);
		return -1;
	}
	return 0;
}

/* The line reader. */

struct dt_rpt_scan {
	char **paths;
	int npaths, next;
	int fd;
	const char *name;
	int eof;
	size_t max_line;
	char *in;
	size_t in_pos, in_len;
	char *buf;              /* a line that crosses reads */
	const char *line;       /* the current line: in the input or buf */
	size_t line_len;
	char *arena;
	unsigned long lineno;
};

struct dt_rpt_scan *
dt_rpt_scan_new(char **paths, int n, size_t max_line)
{
	struct dt_rpt_scan *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->paths = paths;
	r->npaths = n;
	r->fd = -1;
	r->max_line = max_line ? max_line :
	    (size_t)DT_NDJSON_MAX_LINE_DEFAULT;
	r->in = malloc(INBUF_SIZE);
	r->buf = malloc(r->max_line + 1);
	r->arena = malloc(r->max_line + 2);
	if (r->in == NULL || r->buf == NULL || r->arena == NULL) {
		dt_rpt_scan_free(r);
		return NULL;
	}
	return r;
}

void
dt_rpt_scan_free(struct dt_rpt_scan *r)
{
	if (r == NULL)
		return;
	if (r->fd > STDIN_FILENO)
		close(r->fd);
	free(r->in);
	free(r->buf);
	free(r->arena);
	free(r);
}

static int
open_next(struct dt_rpt_scan *r)
{
	const char *path;

	if (r->npaths == 0) {
		if (r->next > 0)
			return 0;
		path = "-";
	} else if (r->next >= r->npaths)
		return 0;
	else
		path = r->paths[r->next];
	r->next++;
	r->lineno = 0;
	r->eof = 0;
	r->in_pos = r->in_len = 0;
	if (strcmp(path, "-") == 0) {
		r->fd = STDIN_FILENO;
		r->name = "<stdin>";
		return 1;
	}
	r->name = path;
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		dt_error("%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

/* Reads one line; 1 with a line (*toolong when cut), 0 at the end, -1. */
static int
read_line(struct dt_rpt_scan *r, int *toolong)
{
	int got = 0;

	r->line = r->buf;
	r->line_len = 0;
	*toolong = 0;
	for (;;) {
		char *nl;
		size_t avail, take;

		if (r->in_pos == r->in_len) {
			ssize_t n;

			if (r->eof)
				return got;
			do
				n = read(r->fd, r->in, INBUF_SIZE);
			while (n < 0 && errno == EINTR);
			if (n < 0) {
				dt_error("%s: %s", r->name, strerror(errno));
				return -1;
			}
			r->in_pos = 0;
			r->in_len = (size_t)n;
			if (n == 0) {
				r->eof = 1;
				return got;
			}
		}
		avail = r->in_len - r->in_pos;
		nl = memchr(r->in + r->in_pos, '\n', avail);
		take = nl ? (size_t)(nl - (r->in + r->in_pos)) : avail;
		if (!got && nl != NULL && take <= r->max_line) {
			/* The whole line is in the input buffer: use it. */
			r->line = r->in + r->in_pos;
			r->line_len = take;
			r->in_pos += take + 1;
			return 1;
		}
		got = 1;
		r->line = r->buf;
		if (r->line_len + take > r->max_line) {
			memcpy(r->buf + r->line_len, r->in + r->in_pos,
			    r->max_line - r->line_len);
			r->line_len = r->max_line;
			*toolong = 1;
		} else {
			memcpy(r->buf + r->line_len, r->in + r->in_pos, take);
			r->line_len += take;
		}
		r->in_pos += take;
		if (nl != NULL) {
			r->in_pos++;
			return 1;
		}
	}
}

static int
blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int
dt_rpt_scan_next(struct dt_rpt_scan *r, const char *const *names,
    int nnames, struct dt_rpt_rec *rec)
{
	char err[256];
	int rc, toolong;

	for (;;) {
		if (r->fd < 0) {
			rc = open_next(r);
			if (rc == 0)
				return DT_NDJSON_EOF;
			if (rc < 0)
				return DT_NDJSON_ERROR;
		}
		rc = read_line(r, &toolong);
		if (rc <= 0) {
			if (r->fd > STDIN_FILENO)
				close(r->fd);
			r->fd = -1;
			if (rc < 0)
				return DT_NDJSON_ERROR;
			continue;
		}
		r->lineno++;
		if (r->lineno == 1) {
			size_t bom = dt_ndjson_bom(r->line, r->line_len);

			r->line += bom;
			r->line_len -= bom;
		}
		if (toolong) {
			dt_warn("%s:%lu: line too long (limit %zu bytes)",
			    r->name, r->lineno, r->max_line);
			return DT_NDJSON_BAD;
		}
		if (blank(r->line, r->line_len))
			continue;
		if (dt_rpt_scan_line(r->line, r->line_len, r->arena, names,
		    nnames, rec, err, sizeof(err)) < 0) {
			dt_warn("%s:%lu: %s", r->name, r->lineno, err);
			return DT_NDJSON_BAD;
		}
		return DT_NDJSON_RECORD;
	}
}
