/*
 * api.c: request bodies and response reading for the Agent API and chat
 * completions; docs/analyze.md describes the shapes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "schema.h"
#include "sha256.h"
#include "utf8.h"

const char *
dt_api_path(int kind)
{
	return kind == DT_API_CHAT ? "/chat/completions" : "/v1/agent";
}

/* "</dt-data-" hex ">" into close (32 bytes). */
static void
closing(char *close, const char *hex)
{
	memcpy(close, "</dt-data-", 10);
	memcpy(close + 10, hex, 12);
	memcpy(close + 22, ">", 2);
}

char *
dt_api_wrap(const char *text, size_t len, size_t *outlen)
{
	static const char digits[] = "0123456789abcdef";
	struct dt_sha256 c;
	unsigned char dig[32];
	char hex[13], close[32], *out;
	unsigned long long h = 0xcbf29ce484222325ULL;
	size_t cl, o, i;
	unsigned salt = 0;

	/*
	 * The marker is twelve hex digits of the text's 64-bit FNV-1a hash
	 * (cheap: SHA-256 was 6 % of a record's instructions).  Should the
	 * text hold that closing marker (anyone can compute it), it comes
	 * from the SHA-256 of the text and a salt instead, salted again
	 * until the text does not hold it.  Either way the text cannot
	 * close its own block.
	 */
	for (i = 0; i < len; i++) {
		h ^= (unsigned char)text[i];
		h *= 0x100000001b3ULL;
	}
	for (i = 0; i < 12; i++)
		hex[i] = digits[(h >> (60 - 4 * i)) & 15];
	hex[12] = '\0';
	closing(close, hex);
	while (memmem(text, len, close, 23) != NULL) {
		dt_sha256_init(&c);
		dt_sha256_update(&c, text, len);
		dt_sha256_update(&c, &salt, sizeof(salt));
		dt_sha256_final(&c, dig);
		dt_sha256_tohex(dig, hex, 12);
		closing(close, hex);
		salt++;
	}
	cl = strlen(close);
	if ((out = malloc(len + 2 * cl + 2)) == NULL)
		return NULL;
	/* "<dt-data-H>\n", the text, "\n</dt-data-H>" */
	out[0] = '<';
	memcpy(out + 1, close + 2, cl - 2);
	o = cl - 1;
	out[o++] = '\n';
	memcpy(out + o, text, len);
	o += len;
	out[o++] = '\n';
	memcpy(out + o, close, cl + 1);
	*outlen = o + cl;
	return out;
}

json_t *
dt_api_request(const struct dt_api *a, const char *input)
{
	json_t *body, *fmt;

	fmt = json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema",
	    "json_schema", "name", a->schema_name, "schema", a->schema,
	    "strict", 1);
	if (fmt == NULL)
		return NULL;
	if (a->kind == DT_API_CHAT) {
		body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:o, s:I}",
		    "model", a->model, "messages", "role", "system", "content",
		    a->prompt, "role", "user", "content", input,
		    "response_format", fmt, "max_tokens",
		    (json_int_t)a->max_output_tokens);
		if (body != NULL && a->disable_search && !a->web_search)
			json_object_set_new(body, "disable_search", json_true());
		return body;
	}
	body = json_pack("{s:s, s:s, s:s, s:o, s:I}", "model", a->model,
	    "instructions", a->prompt, "input", input, "response_format", fmt,
	    "max_output_tokens", (json_int_t)a->max_output_tokens);
	if (body != NULL && a->web_search)
		json_object_set_new(body, "tools",
		    json_pack("[{s:s}]", "type", "web_search"));
	return body;
}

/*
 * The static part of every body, rendered once.  Agent: the body up to
 * its closing brace, and a request adds ,"input":TEXT}.  Chat: the user
 * message goes last, so the head ends inside the messages list after
 * the system message, and a request adds TEXT}]}.
 */
int
dt_api_prepare(struct dt_api *a)
{
	static const char chat1[] = ",\"messages\":[{\"role\":\"system\","
	    "\"content\":";
	static const char chat2[] = "},{\"role\":\"user\",\"content\":";
	json_t *body;
	char *s, *h;
	size_t n, pl = 0;

	if ((body = dt_api_request(a, "")) == NULL)
		return -1;
	if (a->kind == DT_API_CHAT)
		json_object_del(body, "messages");
	else
		json_object_del(body, "input");
	s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (s == NULL)
		return -1;
	n = strlen(s) - 1;      /* without the closing brace */
	if (a->kind == DT_API_CHAT)
		pl = strlen(a->prompt);
	if ((h = malloc(n + sizeof(chat1) + 6 * pl + 2 + sizeof(chat2))) ==
	    NULL) {
		free(s);
		return -1;
	}
	memcpy(h, s, n);
	free(s);
	if (a->kind == DT_API_CHAT) {
		memcpy(h + n, chat1, sizeof(chat1) - 1);
		n += sizeof(chat1) - 1;
		n += json_quote(h + n, a->prompt, pl);
		memcpy(h + n, chat2, sizeof(chat2) - 1);
		n += sizeof(chat2) - 1;
	}
	h[n] = '\0';
	a->head = h;
	a->head_len = n;
	return 0;
}

void
dt_api_release(struct dt_api *a)
{
	free(a->head);
	a->head = NULL;
	a->head_len = 0;
}

char *
dt_api_body(const struct dt_api *a, const char *input, size_t len,
    size_t *body_len)
{
	static const char agent[] = ",\"input\":";
	char *out;
	size_t o = a->head_len;

	if ((out = malloc(a->head_len + sizeof(agent) + 6 * len + 2 + 4)) ==
	    NULL)
		return NULL;
	memcpy(out, a->head, a->head_len);
	if (a->kind == DT_API_CHAT) {
		o += json_quote(out + o, input, len);
		memcpy(out + o, "}]}", 4);
		o += 3;
	} else {
		memcpy(out + o, agent, sizeof(agent) - 1);
		o += sizeof(agent) - 1;
		o += json_quote(out + o, input, len);
		memcpy(out + o, "}", 2);
		o += 1;
	}
	*body_len = o;
	return out;
}

/* What a response says, as either reader below finds it. */
struct reply {
	char *model;            /* "model", when a string */
	char *status;           /* agent: "status", when a string */
	char *error;            /* agent: error.message */
	char *reason;           /* agent: incomplete_details.reason */
	char *text;             /* the output text, NULL when there is none */
	char *finish;           /* chat: choices[0].finish_reason */
	struct dt_usage u;
};

static void
reply_free(struct reply *r)
{
	free(r->model);
	free(r->status);
	free(r->error);
	free(r->reason);
	free(r->text);
	free(r->finish);
	memset(r, 0, sizeof(*r));
}

/*
 * Appends n bytes to the NUL-terminated string *s (NULL: empty).
 * Returns 0, or -1 when out of memory.
 */
static int
append(char **s, const char *add, size_t n)
{
	size_t o = *s ? strlen(*s) : 0;
	char *p;

	if ((p = realloc(*s, o + n + 1)) == NULL)
		return -1;
	memcpy(p + o, add, n);
	p[o + n] = '\0';
	*s = p;
	return 0;
}

/* ---- the Jansson reader, for whatever the scanner below does not take */

static char *
dup_string(json_t *v)
{
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static long long
get_ll(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void
dom_usage(int kind, json_t *resp, struct dt_usage *u)
{
	json_t *usage = json_object_get(resp, "usage"), *cost;

	if (!json_is_object(usage))
		return;
	if (kind == DT_API_CHAT) {
		u->input_tokens = get_ll(usage, "prompt_tokens");
		u->output_tokens = get_ll(usage, "completion_tokens");
	} else {
		u->input_tokens = get_ll(usage, "input_tokens");
		u->output_tokens = get_ll(usage, "output_tokens");
	}
	u->total_tokens = get_ll(usage, "total_tokens");
	cost = json_object_get(usage, "cost");
	if (json_is_object(cost) &&
	    json_is_number(json_object_get(cost, "total_cost"))) {
		u->cost_usd = json_number_value(json_object_get(cost,
		    "total_cost"));
		u->have_cost = 1;
	} else if (json_is_number(cost)) {
		u->cost_usd = json_number_value(cost);
		u->have_cost = 1;
	}
}

/* The text of every output_text part of every message item, joined. */
static int
dom_agent_text(json_t *resp, char **text)
{
	json_t *output = json_object_get(resp, "output"), *item, *part;
	size_t i, j;

	json_array_foreach(output, i, item) {
		const char *type = json_string_value(json_object_get(item,
		    "type"));

		if (type == NULL || strcmp(type, "message") != 0)
			continue;
		json_array_foreach(json_object_get(item, "content"), j, part) {
			json_t *t = json_object_get(part, "text");
			const char *pt = json_string_value(json_object_get(part,
			    "type"));

			if (!json_is_string(t) || pt == NULL ||
			    strcmp(pt, "output_text") != 0)
				continue;
			if (append(text, json_string_value(t),
			    json_string_length(t)) < 0)
				return -1;
		}
	}
	return 0;
}

static int
dom_reply(int kind, json_t *resp, struct reply *r)
{
	json_t *choice;

	dom_usage(kind, resp, &r->u);
	r->model = dup_string(json_object_get(resp, "model"));
	if (kind == DT_API_AGENT) {
		r->status = dup_string(json_object_get(resp, "status"));
		r->error = dup_string(json_object_get(json_object_get(resp,
		    "error"), "message"));
		r->reason = dup_string(json_object_get(json_object_get(resp,
		    "incomplete_details"), "reason"));
		return dom_agent_text(resp, &r->text);
	}
	choice = json_array_get(json_object_get(resp, "choices"), 0);
	r->text = dup_string(json_object_get(json_object_get(choice,
	    "message"), "content"));
	r->finish = dup_string(json_object_get(choice, "finish_reason"));
	return 0;
}

/*
 * ---- the scanner
 *
 * Jansson reads JSON a byte at a time through several calls and copies
 * every byte on its own: reading a response of 750 bytes took about
 * 130,000 instructions, a third of all a record cost.  This scanner
 * checks JSON text as strictly as json_loadb(..., 0) does, at a few
 * instructions a byte, and reads what dt-analyze needs straight from
 * the text.  It gives up (-1) on anything it does not take: invalid
 * JSON, a key holding an escape, nesting deeper than SCAN_DEPTH, a
 * number of more than 63 characters or out of range, \u0000.  The
 * Jansson reader then reads the text instead, with the same results
 * and Jansson's error messages.  t/unit/analyze_json.c compares the
 * two.
 */
#define SCAN_DEPTH 64

struct scan {
	const char *p, *end;
	int depth;
};

/* A value in the text; for a string, its content between the quotes. */
struct span {
	const char *s;
	size_t n;
	int esc;                /* a string with escapes in it */
};

static void
ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' ||
	    *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

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
static int
scan_string(struct scan *s, struct span *sp)
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

/* Appends code point c to out as UTF-8.  Returns the bytes written. */
static size_t
put_utf8(char *out, unsigned long c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * Decodes a string scan_string() accepted into out (sp->n + 1 bytes: a
 * decoded string is never longer).  Returns its length; out ends in NUL.
 */
static size_t
decode(const struct span *sp, char *out)
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
				o += put_utf8(out + o, 0x10000 +
				    ((unsigned long)(v - 0xd800) << 10) +
				    (w - 0xdc00));
				p += 12;
			} else {
				o += put_utf8(out + o, v);
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
static char *
span_dup(const struct span *sp)
{
	char *out = malloc(sp->n + 1);

	if (out != NULL)
		decode(sp, out);
	return out;
}

/*
 * Reads the number at s->p.  *real tells a number with a fraction or an
 * exponent (Jansson's real) from an integer.  With want set, the value
 * goes to *iv or *dv.  A number out of range fails, as in Jansson; only
 * one with an exponent or of 19 digits or more can be.
 */
static int
scan_number(struct scan *s, int want, int *real, long long *iv, double *dv)
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

static int
scan_literal(struct scan *s, const char *w, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

static int scan_value(struct scan *s);

/* Reads ws, then ',' (1, more to come) or close (0, the end). */
static int
scan_more(struct scan *s, char close)
{
	ws(s);
	if (s->p < s->end && *s->p == ',') {
		s->p++;
		ws(s);
		return 1;
	}
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return 0;
	}
	return -1;
}

/* Reads a member's key and the ':' after it. */
static int
scan_key(struct scan *s, struct span *k)
{
	if (s->p >= s->end || *s->p != '"' || scan_string(s, k) < 0 || k->esc)
		return -1;
	ws(s);
	if (s->p >= s->end || *s->p != ':')
		return -1;
	s->p++;
	ws(s);
	return 0;
}

/* Reads the object or array at s->p. */
static int
scan_container(struct scan *s)
{
	char close = *s->p == '{' ? '}' : ']';
	struct span k;
	int rc;

	if (++s->depth > SCAN_DEPTH)
		return -1;
	s->p++;
	ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	do {
		if (close == '}' && scan_key(s, &k) < 0)
			return -1;
		if (scan_value(s) < 0)
			return -1;
	} while ((rc = scan_more(s, close)) == 1);
	s->depth--;
	return rc;
}

static int
scan_value(struct scan *s)
{
	struct span sp;
	long long iv;
	double dv;
	int real;

	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '"':
		return scan_string(s, &sp);
	case '{':
	case '[':
		return scan_container(s);
	case 't':
		return scan_literal(s, "true", 4);
	case 'f':
		return scan_literal(s, "false", 5);
	case 'n':
		return scan_literal(s, "null", 4);
	default:
		return scan_number(s, 0, &real, &iv, &dv);
	}
}

/*
 * Skips the string at p (a '"'), in text the scanner has checked (so the
 * closing quote is there), and returns the position after it; sp gets
 * its content.
 */
static const char *
skip_string(const char *p, struct span *sp)
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
static void
skip_value(struct scan *s)
{
	const char *p = s->p;
	struct span sp;
	int depth = 0;

	do {
		switch (*p) {
		case '"':
			p = skip_string(p, &sp);
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

/*
 * Walks the members of an object (or the items of an array) that the
 * scanner has checked: each call to walk_next() gives the next key
 * (objects) and value (as the text it spans), 1 while there is one,
 * then 0.
 */
struct walk {
	struct scan s;
	char close;
	int started;
};

static int
walk_begin(struct walk *w, const struct span *v, char open)
{
	if (v->s == NULL || v->n == 0 || v->s[0] != open)
		return -1;
	w->s.p = v->s + 1;
	w->s.end = v->s + v->n;
	w->s.depth = 0;
	w->close = open == '{' ? '}' : ']';
	w->started = 0;
	ws(&w->s);
	return 0;
}

static int
walk_next(struct walk *w, struct span *k, struct span *v)
{
	struct scan *s = &w->s;

	if (!w->started) {
		w->started = 1;
		if (*s->p == w->close)
			return 0;
	} else {
		ws(s);
		if (*s->p != ',')
			return 0;
		s->p++;
		ws(s);
	}
	if (w->close == '}') {
		s->p = skip_string(s->p, k);
		ws(s);
		s->p++;         /* the ':' */
		ws(s);
	}
	v->s = s->p;
	skip_value(s);
	v->n = (size_t)(s->p - v->s);
	return 1;
}

/*
 * Finds the members keys[0..n-1] of the object v in one walk: vals[i]
 * gets the value of the last member named keys[i] (as json_object_get
 * finds it), or s NULL when there is none.  Returns 0, or -1 when v is
 * no object.
 */
static int
pick(const struct span *v, const char *const *keys, struct span *vals,
    int n)
{
	struct walk w;
	struct span k, m;
	int i;

	for (i = 0; i < n; i++)
		vals[i].s = NULL;
	if (walk_begin(&w, v, '{') < 0)
		return -1;
	while (walk_next(&w, &k, &m) == 1)
		for (i = 0; i < n; i++)
			if (k.s[0] == keys[i][0] &&
			    strncmp(k.s, keys[i], k.n) == 0 &&
			    keys[i][k.n] == '\0')
				vals[i] = m;
	return 0;
}

/* The value of the last member key of the object v, as json_object_get. */
static int
get(const struct span *v, const char *key, struct span *out)
{
	return pick(v, &key, out, 1) == 0 && out->s != NULL;
}

/* The string v (a value's text) in *sp; -1 when v is no string. */
static int
as_string(const struct span *v, struct span *sp)
{
	if (v->n == 0 || v->s[0] != '"')
		return -1;
	(void)skip_string(v->s, sp);
	return 0;
}

/* A new copy of the string v, or NULL when v is no string. */
static char *
string_dup(const struct span *v)
{
	struct span sp;

	return as_string(v, &sp) < 0 ? NULL : span_dup(&sp);
}

/* 1 when v is the string lit (which holds no escapes). */
static int
string_is(const struct span *v, const char *lit)
{
	struct span sp;
	char *d;
	int eq;

	if (as_string(v, &sp) < 0)
		return 0;
	if (!sp.esc)
		return sp.n == strlen(lit) && memcmp(sp.s, lit, sp.n) == 0;
	if ((d = span_dup(&sp)) == NULL)
		return 0;
	eq = strcmp(d, lit) == 0;
	free(d);
	return eq;
}

/* v as a number: 0 when it is none; *real as in scan_number(). */
static int
as_number(const struct span *v, int *real, long long *iv, double *dv)
{
	struct scan s = {v->s, v->s + v->n, 0};

	if (v->n == 0 || !(v->s[0] == '-' || (v->s[0] >= '0' &&
	    v->s[0] <= '9')))
		return 0;
	return scan_number(&s, 1, real, iv, dv) == 0;
}

/* The integer v, 0 when it is none (a missing member included). */
static long long
as_int(const struct span *v)
{
	long long iv;
	double dv;
	int real;

	if (v->s == NULL || !as_number(v, &real, &iv, &dv) || real)
		return 0;
	return iv;
}

static void
scan_usage(int kind, const struct span *usage, struct dt_usage *u)
{
	static const char *const agent[] = {"input_tokens", "output_tokens",
	    "total_tokens", "cost"};
	static const char *const chat[] = {"prompt_tokens",
	    "completion_tokens", "total_tokens", "cost"};
	struct span m[4], total;
	long long iv;
	double dv;
	int real;

	if (pick(usage, kind == DT_API_CHAT ? chat : agent, m, 4) < 0)
		return;
	u->input_tokens = as_int(&m[0]);
	u->output_tokens = as_int(&m[1]);
	u->total_tokens = as_int(&m[2]);
	if (m[3].s == NULL)
		return;
	if (!(m[3].s[0] == '{' && get(&m[3], "total_cost", &total)))
		total = m[3];
	if (as_number(&total, &real, &iv, &dv)) {
		u->cost_usd = real ? dv : (double)iv;
		u->have_cost = 1;
	}
}

/* dom_agent_text() on the text of "output". */
static int
scan_agent_text(const struct span *output, char **text)
{
	static const char *const item_keys[] = {"type", "content"};
	static const char *const part_keys[] = {"type", "text"};
	struct span item, part, k, m[2], sp;
	struct walk items, parts;

	if (walk_begin(&items, output, '[') < 0)
		return 0;
	while (walk_next(&items, &k, &item) == 1) {
		if (pick(&item, item_keys, m, 2) < 0 || m[0].s == NULL ||
		    !string_is(&m[0], "message") || m[1].s == NULL ||
		    walk_begin(&parts, &m[1], '[') < 0)
			continue;
		while (walk_next(&parts, &k, &part) == 1) {
			char *d;
			int rc;

			if (pick(&part, part_keys, m, 2) < 0 ||
			    m[1].s == NULL || as_string(&m[1], &sp) < 0 ||
			    m[0].s == NULL || !string_is(&m[0], "output_text"))
				continue;
			if ((d = span_dup(&sp)) == NULL)
				return -1;
			rc = append(text, d, strlen(d));
			free(d);
			if (rc < 0)
				return -1;
		}
	}
	return 0;
}

/* The members of a response that dt-analyze reads (the last of each). */
enum { M_MODEL, M_STATUS, M_ERROR, M_INCOMPLETE, M_OUTPUT, M_USAGE,
    M_CHOICES, NMEMBERS };

static const char *const members[NMEMBERS] = {"model", "status", "error",
    "incomplete_details", "output", "usage", "choices"};

/*
 * Reads a response with the scanner.  Returns 0 with *r filled, or -1
 * when the Jansson reader must read it (then *r is to be freed).
 */
static int
scan_reply(int kind, const char *body, size_t len, struct reply *r)
{
	static const char *const choice_keys[] = {"message", "finish_reason"};
	struct scan s = {body, body + len, 0};
	struct span m[NMEMBERS], k, v = {NULL, 0, 0}, c[2];
	struct walk w;
	int i = 0;

	/*
	 * The top level is checked member by member, noting the members
	 * wanted on the way; what they hold was checked with them.
	 */
	memset(m, 0, sizeof(m));
	ws(&s);
	if (s.p >= s.end || *s.p++ != '{')
		return -1;
	ws(&s);
	if (s.p < s.end && *s.p == '}')
		s.p++;
	else
		do {
			if (scan_key(&s, &k) < 0)
				return -1;
			v.s = s.p;
			if (scan_value(&s) < 0)
				return -1;
			v.n = (size_t)(s.p - v.s);
			for (i = 0; i < NMEMBERS; i++)
				if (k.s[0] == members[i][0] &&
				    strncmp(k.s, members[i], k.n) == 0 &&
				    members[i][k.n] == '\0')
					m[i] = v;
		} while ((i = scan_more(&s, '}')) == 1);
	if (i < 0)
		return -1;
	ws(&s);
	if (s.p != s.end)
		return -1;

	scan_usage(kind, &m[M_USAGE], &r->u);
	if (m[M_MODEL].s != NULL)
		r->model = string_dup(&m[M_MODEL]);
	if (kind == DT_API_AGENT) {
		if (m[M_STATUS].s != NULL)
			r->status = string_dup(&m[M_STATUS]);
		if (get(&m[M_ERROR], "message", &v))
			r->error = string_dup(&v);
		if (get(&m[M_INCOMPLETE], "reason", &v))
			r->reason = string_dup(&v);
		return scan_agent_text(&m[M_OUTPUT], &r->text);
	}
	if (walk_begin(&w, &m[M_CHOICES], '[') < 0 ||
	    walk_next(&w, &k, &v) != 1 || pick(&v, choice_keys, c, 2) < 0)
		return 0;
	if (c[0].s != NULL && get(&c[0], "content", &v))
		r->text = string_dup(&v);
	if (c[1].s != NULL)
		r->finish = string_dup(&c[1]);
	return 0;
}

/* Builds the Jansson value at s->p, which scan_value() would accept. */
static json_t *
build(struct scan *s)
{
	struct span sp, k;
	json_t *v, *m;
	long long iv;
	double dv;
	int real, rc;
	char close;

	if (s->p >= s->end)
		return NULL;
	switch (*s->p) {
	case '"':
		if (scan_string(s, &sp) < 0)
			return NULL;
		if (!sp.esc)
			return json_stringn_nocheck(sp.s, sp.n);
		{
			char small[256], *d = sp.n < sizeof(small) ? small :
			    malloc(sp.n + 1);
			size_t n;

			if (d == NULL)
				return NULL;
			n = decode(&sp, d);
			v = json_stringn_nocheck(d, n);
			if (d != small)
				free(d);
			return v;
		}
	case '{':
	case '[':
		close = *s->p == '{' ? '}' : ']';
		if (++s->depth > SCAN_DEPTH || (v = close == '}' ?
		    json_object() : json_array()) == NULL)
			return NULL;
		s->p++;
		ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			s->depth--;
			return v;
		}
		m = NULL;
		rc = -1;
		do {
			if (close == '}' && scan_key(s, &k) < 0)
				break;
			if ((m = build(s)) == NULL)
				break;
			if (close == '}' ? json_object_setn_new_nocheck(v, k.s,
			    k.n, m) : json_array_append_new(v, m)) {
				rc = -1;
				break;
			}
		} while ((rc = scan_more(s, close)) == 1);
		if (m == NULL || rc != 0) {
			json_decref(v);
			return NULL;
		}
		s->depth--;
		return v;
	case 't':
		return scan_literal(s, "true", 4) < 0 ? NULL : json_true();
	case 'f':
		return scan_literal(s, "false", 5) < 0 ? NULL : json_false();
	case 'n':
		return scan_literal(s, "null", 4) < 0 ? NULL : json_null();
	default:
		if (scan_number(s, 1, &real, &iv, &dv) < 0)
			return NULL;
		return real ? json_real(dv) : json_integer(iv);
	}
}

/*
 * Reads the model's output text as JSON (an object or an array, as
 * json_loadb with no flags), with the scanner, else with Jansson.
 */
static json_t *
read_output(const char *text, size_t len, char *why, size_t whylen)
{
	struct scan s = {text, text + len, 0};
	json_error_t je;
	json_t *v = NULL;

	ws(&s);
	if (s.p < s.end && (*s.p == '{' || *s.p == '[') &&
	    (v = build(&s)) != NULL) {
		ws(&s);
		if (s.p == s.end)
			return v;
		json_decref(v);
	}
	if ((v = json_loadb(text, len, 0, &je)) == NULL)
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
	return v;
}

/* Drops a Markdown code fence around the JSON, which some models add. */
static void
strip_fence(const char *s, size_t n, size_t *start, size_t *len)
{
	size_t b = 0, e = n;

	while (b < e && (s[b] == ' ' || s[b] == '\n' || s[b] == '\r' ||
	    s[b] == '\t'))
		b++;
	while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n' ||
	    s[e - 1] == '\r' || s[e - 1] == '\t'))
		e--;
	if (e - b >= 6 && strncmp(s + b, "```", 3) == 0 &&
	    strncmp(s + e - 3, "```", 3) == 0) {
		const char *nl = memchr(s + b, '\n', e - b);

		if (nl != NULL && (size_t)(nl - s) < e - 3) {
			b = (size_t)(nl - s) + 1;
			e -= 3;
		}
	}
	*start = b;
	*len = e - b;
}

/* Set by the unit tests to compare the two readers. */
static int jansson_only;

int
dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw)
{
	struct reply r;
	json_error_t je;
	json_t *resp, *out = NULL;
	const char *status;
	char verr[300];
	size_t start, tlen;
	int rc = DT_API_INVALID;

	*analysis = NULL;
	*raw = NULL;
	memset(&r, 0, sizeof(r));
	if (jansson_only || scan_reply(a->kind, body, len, &r) < 0) {
		reply_free(&r);
		if ((resp = json_loadb(body, len, 0, &je)) == NULL ||
		    !json_is_object(resp)) {
			utf8_format(why, whylen, "the response is not a JSON "
			    "object%s%s", resp == NULL ? ": " : "",
			    resp == NULL ? je.text : "");
			json_decref(resp);
			*raw = utf8_dup(body, len, DT_API_RAW_MAX);
			memset(u, 0, sizeof(*u));
			return DT_API_INVALID;
		}
		(void)dom_reply(a->kind, resp, &r);
		json_decref(resp);
	}
	*u = r.u;
	if (u->total_tokens == 0)
		u->total_tokens = u->input_tokens + u->output_tokens;
	utf8_format(model, cap, "%s", r.model ? r.model : a->model);

	if (a->kind == DT_API_AGENT) {
		status = r.status ? r.status : "(none)";
		if (strcmp(status, "failed") == 0) {
			utf8_format(why, whylen, "the API reported status "
			    "failed%s%s", r.error ? ": " : "",
			    r.error ? r.error : "");
			free(r.text);
			r.text = NULL;
			rc = DT_API_FAILED;
			goto out;
		}
		if (strcmp(status, "incomplete") == 0) {
			utf8_format(why, whylen, "the API reported the output "
			    "incomplete%s%s", r.reason ? ": " : "",
			    r.reason ? r.reason : "");
			goto out;
		}
		if (strcmp(status, "completed") != 0) {
			utf8_format(why, whylen, "unexpected response status "
			    "\"%.*s\"", (int)utf8_cut(status, strlen(status),
			    40), status);
			goto out;
		}
	} else if (r.finish != NULL && strcmp(r.finish, "length") == 0) {
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete: finish_reason length");
		goto out;
	}
	if (r.text == NULL) {
		utf8_format(why, whylen, "the response holds no output text");
		goto out;
	}
	strip_fence(r.text, strlen(r.text), &start, &tlen);
	if ((out = read_output(r.text + start, tlen, why, whylen)) == NULL)
		goto out;
	if ((a->compiled != NULL ? dt_schema_run(a->compiled, out, verr,
	    sizeof(verr)) : dt_schema_validate(a->schema, out, verr,
	    sizeof(verr))) < 0) {
		utf8_format(why, whylen, "the output does not match the "
		    "schema: %s", verr);
		goto out;
	}
	*analysis = out;
	out = NULL;
	rc = DT_API_OK;
out:
	json_decref(out);
	if (rc != DT_API_OK) {
		*raw = r.text;
		r.text = NULL;
	}
	reply_free(&r);
	return rc;
}

void
dt_api_error_message(const char *body, size_t n, char *buf, size_t len)
{
	json_t *resp = json_loadb(body, n, 0, NULL), *e;
	const char *m = NULL;

	e = json_object_get(resp, "error");
	if (json_is_string(e))
		m = json_string_value(e);
	else if (json_is_object(e))
		m = json_string_value(json_object_get(e, "message"));
	utf8_format(buf, len, "%s", m ? m : "");
	json_decref(resp);
}

long long
dt_api_estimate_tokens(const char *s, size_t n)
{
	(void)s;
	return (long long)(n + 3) / 4;
}
