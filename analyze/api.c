/*
 * api.c: request bodies and response reading for the Agent API and chat
 * completions; docs/analyze.md describes the shapes.
 */
#include <sys/uio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "api.h"
#include "buf.h"
#include "schema.h"
#include "utf8.h"

/* "</dt-data-" hex ">" into close (32 bytes). */
static void
closing(char *close, const char *hex)
{
	memcpy(close, "</dt-data-", 10);
	memcpy(close + 10, hex, 12);
	memcpy(close + 22, ">", 2);
}

void
dt_api_digest(const struct iovec *parts, int n, char *hex, size_t nhex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t i;
	int ok;

	ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
	for (i = 0; ok && i < (size_t)n; i++)
		ok = EVP_DigestUpdate(c, parts[i].iov_base,
		    parts[i].iov_len) == 1;
	if (!ok || EVP_DigestFinal_ex(c, dig, &dlen) != 1)
		dlen = 0;
	EVP_MD_CTX_free(c);
	for (i = 0; i < nhex && i / 2 < dlen; i++)
		hex[i] = digits[(dig[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	/* Without a digest (out of memory) the hex is all zeros. */
	for (; i < nhex; i++)
		hex[i] = '0';
	hex[nhex] = '\0';
}

char *
dt_api_wrap(const char *text, size_t len, size_t *outlen)
{
	static const char digits[] = "0123456789abcdef";
	char hex[13], close[32], *out;
	unsigned long long h = 0xcbf29ce484222325ULL;
	unsigned salt = 0;
	size_t cl, o, i;

	/*
	 * The marker is twelve hex digits of the text's 64-bit FNV-1a hash.
	 * Should the text hold that closing marker (anyone can compute it),
	 * it comes from the SHA-256 of the text and a salt instead, salted
	 * again until the text does not hold it.  Either way the text
	 * cannot close its own block.
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
		struct iovec parts[2] = {{(void *)text, len},
		    {&salt, sizeof(salt)}};

		dt_api_digest(parts, 2, hex, 12);
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
dt_api_request(const struct dt_api *a, const char *input, size_t len)
{
	json_t *body, *fmt;

	fmt = json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema",
	    "json_schema", "name", a->schema_name, "schema", a->schema,
	    "strict", 1);
	if (fmt == NULL)
		return NULL;
	if (a->kind == DT_API_CHAT) {
		body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s%}], s:o, s:I}",
		    "model", a->model, "messages", "role", "system", "content",
		    a->prompt, "role", "user", "content", input, len,
		    "response_format", fmt, "max_tokens",
		    (json_int_t)a->max_output_tokens);
		if (body != NULL && a->disable_search && !a->web_search)
			json_object_set_new(body, "disable_search", json_true());
		return body;
	}
	body = json_pack("{s:s, s:s, s:s%, s:o, s:I}", "model", a->model,
	    "instructions", a->prompt, "input", input, len, "response_format",
	    fmt, "max_output_tokens", (json_int_t)a->max_output_tokens);
	if (body != NULL && a->web_search)
		json_object_set_new(body, "tools",
		    json_pack("[{s:s}]", "type", "web_search"));
	return body;
}

char *
dt_api_body(const struct dt_api *a, const char *input, size_t len,
    size_t *body_len)
{
	json_t *body = dt_api_request(a, input, len);
	char *s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	*body_len = s != NULL ? strlen(s) : 0;
	return s;
}

/*
 * What a response says.  The strings but text are borrowed from the
 * parsed response and NULL when absent or not strings; text is owned.
 */
struct reply {
	const char *model;      /* "model" */
	const char *status;     /* agent: "status" */
	const char *error;      /* agent: error.message */
	const char *reason;     /* agent: incomplete_details.reason */
	char *text;             /* the output text, NULL when there is none */
	const char *finish;     /* chat: choices[0].finish_reason */
	struct dt_usage u;
};

static long long
get_ll(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void
read_usage(int kind, json_t *resp, struct dt_usage *u)
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

/*
 * The text of every output_text part of every message item, joined,
 * into *text (NULL when there is none).  Returns 0, or -1 when out of
 * memory.
 */
static int
agent_text(json_t *resp, char **text)
{
	json_t *output = json_object_get(resp, "output"), *item, *part;
	struct dt_buf b = {0};
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
			if (dt_buf_add(&b, json_string_value(t),
			    json_string_length(t)) < 0) {
				dt_buf_free(&b);
				return -1;
			}
		}
	}
	*text = b.p;
	return 0;
}

static int
read_reply(int kind, json_t *resp, struct reply *r)
{
	json_t *choice;
	const char *text;

	read_usage(kind, resp, &r->u);
	r->model = json_string_value(json_object_get(resp, "model"));
	if (kind == DT_API_AGENT) {
		r->status = json_string_value(json_object_get(resp, "status"));
		r->error = json_string_value(json_object_get(json_object_get(
		    resp, "error"), "message"));
		r->reason = json_string_value(json_object_get(json_object_get(
		    resp, "incomplete_details"), "reason"));
		return agent_text(resp, &r->text);
	}
	choice = json_array_get(json_object_get(resp, "choices"), 0);
	r->finish = json_string_value(json_object_get(choice,
	    "finish_reason"));
	text = json_string_value(json_object_get(json_object_get(choice,
	    "message"), "content"));
	if (text != NULL && (r->text = strdup(text)) == NULL)
		return -1;
	return 0;
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

/*
 * What the reply says of the run: DT_API_OK when it completed,
 * DT_API_FAILED (its output text dropped) or DT_API_INVALID with why.
 */
static int
reply_status(int kind, struct reply *r, char *why, size_t whylen)
{
	const char *status = r->status ? r->status : "(none)";

	if (kind == DT_API_CHAT) {
		if (r->finish == NULL || strcmp(r->finish, "length") != 0)
			return DT_API_OK;
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete: finish_reason length");
		return DT_API_INVALID;
	}
	if (strcmp(status, "failed") == 0) {
		utf8_format(why, whylen, "the API reported status failed%s%s",
		    r->error ? ": " : "", r->error ? r->error : "");
		free(r->text);
		r->text = NULL;
		return DT_API_FAILED;
	}
	if (strcmp(status, "incomplete") == 0) {
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete%s%s", r->reason ? ": " : "",
		    r->reason ? r->reason : "");
		return DT_API_INVALID;
	}
	if (strcmp(status, "completed") != 0) {
		utf8_format(why, whylen, "unexpected response status \"%.*s\"",
		    (int)utf8_cut(status, strlen(status), 40), status);
		return DT_API_INVALID;
	}
	return DT_API_OK;
}

int
dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw)
{
	struct reply r;
	json_error_t je;
	json_t *resp, *out = NULL;
	char verr[300];
	size_t start, tlen;
	int rc = DT_API_INVALID;

	*analysis = NULL;
	*raw = NULL;
	memset(&r, 0, sizeof(r));
	if ((resp = json_loadb(body, len, 0, &je)) == NULL ||
	    !json_is_object(resp)) {
		utf8_format(why, whylen, "the response is not a JSON "
		    "object%s%s", resp == NULL ? ": " : "", resp == NULL ? je.text : "");
		json_decref(resp);
		*raw = utf8_dup(body, len, DT_API_RAW_MAX);
		memset(u, 0, sizeof(*u));
		return DT_API_INVALID;
	}
	(void)read_reply(a->kind, resp, &r);
	*u = r.u;
	if (u->total_tokens == 0)
		u->total_tokens = u->input_tokens + u->output_tokens;
	utf8_format(model, cap, "%s", r.model ? r.model : a->model);

	if ((rc = reply_status(a->kind, &r, why, whylen)) != DT_API_OK)
		goto out;
	rc = DT_API_INVALID;
	if (r.text == NULL) {
		utf8_format(why, whylen, "the response holds no output text");
		goto out;
	}
	strip_fence(r.text, strlen(r.text), &start, &tlen);
	if ((out = json_loadb(r.text + start, tlen, 0, &je)) == NULL) {
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
		goto out;
	}
	if (a->packed) {
		if (!json_is_array(json_object_get(out, "results"))) {
			utf8_format(why, whylen, "the output has no \"results\" "
			    "array");
			goto out;
		}
	} else if (dt_schema_validate(a->schema, out, verr, sizeof(verr)) < 0) {
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
	free(r.text);
	json_decref(resp);
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
