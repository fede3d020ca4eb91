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
#include "jscan.h"
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


static void
scan_usage(int kind, const struct js_span *usage, struct dt_usage *u)
{
	static const char *const agent[] = {"input_tokens", "output_tokens",
	    "total_tokens", "cost"};
	static const char *const chat[] = {"prompt_tokens",
	    "completion_tokens", "total_tokens", "cost"};
	struct js_span m[4], total;
	long long iv;
	double dv;
	int real;

	if (js_pick(usage, kind == DT_API_CHAT ? chat : agent, m, 4) < 0)
		return;
	u->input_tokens = js_as_int(&m[0]);
	u->output_tokens = js_as_int(&m[1]);
	u->total_tokens = js_as_int(&m[2]);
	if (m[3].s == NULL)
		return;
	if (!(m[3].s[0] == '{' && js_get(&m[3], "total_cost", &total)))
		total = m[3];
	if (js_as_number(&total, &real, &iv, &dv)) {
		u->cost_usd = real ? dv : (double)iv;
		u->have_cost = 1;
	}
}

/* dom_agent_text() on the text of "output". */
static int
scan_agent_text(const struct js_span *output, char **text)
{
	static const char *const item_keys[] = {"type", "content"};
	static const char *const part_keys[] = {"type", "text"};
	struct js_span item, part, k, m[2], sp;
	struct js_walk items, parts;

	if (js_walk_begin(&items, output, '[') < 0)
		return 0;
	while (js_walk_next(&items, &k, &item) == 1) {
		if (js_pick(&item, item_keys, m, 2) < 0 || m[0].s == NULL ||
		    !js_string_is(&m[0], "message") || m[1].s == NULL ||
		    js_walk_begin(&parts, &m[1], '[') < 0)
			continue;
		while (js_walk_next(&parts, &k, &part) == 1) {
			char *d;
			int rc;

			if (js_pick(&part, part_keys, m, 2) < 0 ||
			    m[1].s == NULL || js_as_string(&m[1], &sp) < 0 ||
			    m[0].s == NULL || !js_string_is(&m[0], "output_text"))
				continue;
			if ((d = js_span_dup(&sp)) == NULL)
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
	struct js_scan s = {body, body + len, 0};
	struct js_span m[NMEMBERS], k, v = {NULL, 0, 0}, c[2];
	struct js_walk w;
	int i = 0;

	/*
	 * The top level is checked member by member, noting the members
	 * wanted on the way; what they hold was checked with them.
	 */
	memset(m, 0, sizeof(m));
	js_ws(&s);
	if (s.p >= s.end || *s.p++ != '{')
		return -1;
	js_ws(&s);
	if (s.p < s.end && *s.p == '}')
		s.p++;
	else
		do {
			if (js_key(&s, &k) < 0)
				return -1;
			v.s = s.p;
			if (js_value(&s) < 0)
				return -1;
			v.n = (size_t)(s.p - v.s);
			for (i = 0; i < NMEMBERS; i++)
				if (k.s[0] == members[i][0] &&
				    strncmp(k.s, members[i], k.n) == 0 &&
				    members[i][k.n] == '\0')
					m[i] = v;
		} while ((i = js_more(&s, '}')) == 1);
	if (i < 0)
		return -1;
	js_ws(&s);
	if (s.p != s.end)
		return -1;

	scan_usage(kind, &m[M_USAGE], &r->u);
	if (m[M_MODEL].s != NULL)
		r->model = js_string_dup(&m[M_MODEL]);
	if (kind == DT_API_AGENT) {
		if (m[M_STATUS].s != NULL)
			r->status = js_string_dup(&m[M_STATUS]);
		if (js_get(&m[M_ERROR], "message", &v))
			r->error = js_string_dup(&v);
		if (js_get(&m[M_INCOMPLETE], "reason", &v))
			r->reason = js_string_dup(&v);
		return scan_agent_text(&m[M_OUTPUT], &r->text);
	}
	if (js_walk_begin(&w, &m[M_CHOICES], '[') < 0 ||
	    js_walk_next(&w, &k, &v) != 1 || js_pick(&v, choice_keys, c, 2) < 0)
		return 0;
	if (c[0].s != NULL && js_get(&c[0], "content", &v))
		r->text = js_string_dup(&v);
	if (c[1].s != NULL)
		r->finish = js_string_dup(&c[1]);
	return 0;
}

/* Builds the Jansson value at s->p, which js_value() would accept. */
static json_t *
build(struct js_scan *s)
{
	struct js_span sp, k;
	json_t *v, *m;
	long long iv;
	double dv;
	int real, rc;
	char close;

	if (s->p >= s->end)
		return NULL;
	switch (*s->p) {
	case '"':
		if (js_string(s, &sp) < 0)
			return NULL;
		if (!sp.esc)
			return json_stringn_nocheck(sp.s, sp.n);
		{
			char small[256], *d = sp.n < sizeof(small) ? small :
			    malloc(sp.n + 1);
			size_t n;

			if (d == NULL)
				return NULL;
			n = js_decode(&sp, d);
			v = json_stringn_nocheck(d, n);
			if (d != small)
				free(d);
			return v;
		}
	case '{':
	case '[':
		close = *s->p == '{' ? '}' : ']';
		if (++s->depth > JS_DEPTH || (v = close == '}' ?
		    json_object() : json_array()) == NULL)
			return NULL;
		s->p++;
		js_ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			s->depth--;
			return v;
		}
		m = NULL;
		rc = -1;
		do {
			if (close == '}' && js_key(s, &k) < 0)
				break;
			if ((m = build(s)) == NULL)
				break;
			if (close == '}' ? json_object_setn_new_nocheck(v, k.s,
			    k.n, m) : json_array_append_new(v, m)) {
				rc = -1;
				break;
			}
		} while ((rc = js_more(s, close)) == 1);
		if (m == NULL || rc != 0) {
			json_decref(v);
			return NULL;
		}
		s->depth--;
		return v;
	case 't':
		return js_literal(s, "true", 4) < 0 ? NULL : json_true();
	case 'f':
		return js_literal(s, "false", 5) < 0 ? NULL : json_false();
	case 'n':
		return js_literal(s, "null", 4) < 0 ? NULL : json_null();
	default:
		if (js_number(s, 1, &real, &iv, &dv) < 0)
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
	struct js_scan s = {text, text + len, 0};
	json_error_t je;
	json_t *v = NULL;

	js_ws(&s);
	if (s.p < s.end && (*s.p == '{' || *s.p == '[') &&
	    (v = build(&s)) != NULL) {
		js_ws(&s);
		if (s.p == s.end)
			return v;
		json_decref(v);
	}
	if ((v = json_loadb(text, len, 0, &je)) == NULL)
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
	return v;
}

#define WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

/*
 * Drops what some models put around the JSON: a leading <think>...</think>
 * block (reasoning models think aloud first) and a Markdown code fence.
 */
static void
strip_fence(const char *s, size_t n, size_t *start, size_t *len)
{
	size_t b = 0, e = n;

	while (b < e && WS(s[b]))
		b++;
	if (e - b >= 7 && memcmp(s + b, "<think>", 7) == 0) {
		const char *end = memmem(s + b + 7, e - b - 7, "</think>", 8);

		if (end != NULL) {
			b = (size_t)(end - s) + 8;
			while (b < e && WS(s[b]))
				b++;
		}
	}
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

void
dt_api_error_type(const char *body, size_t n, char *buf, size_t len)
{
	json_t *resp = json_loadb(body, n, 0, NULL), *e, *t;

	*buf = '\0';
	e = json_object_get(resp, "error");
	if (json_is_object(e)) {
		if (!json_is_string(t = json_object_get(e, "type")))
			t = json_object_get(e, "code");
		if (json_is_string(t))
			utf8_format(buf, len, "%s", json_string_value(t));
		else if (json_is_integer(t))
			snprintf(buf, len, "%lld",
			    (long long)json_integer_value(t));
	}
	json_decref(resp);
}

long long
dt_api_estimate_tokens(const char *s, size_t n)
{
	(void)s;
	return (long long)(n + 3) / 4;
}
