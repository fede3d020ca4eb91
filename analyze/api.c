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

void
dt_api_digest(const struct iovec *parts, int n, char *hex, size_t nhex)
{
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
	/* Without a digest (out of memory) the hex is all zeros. */
	for (i = 0; i < nhex; i++)
		hex[i] = "0123456789abcdef"[i / 2 < dlen ?
		    (dig[i / 2] >> (i % 2 ? 0 : 4)) & 15 : 0];
	hex[nhex] = '\0';
}

/* The data block of dt_api_body(): a new string, or NULL. */
static char *
wrap(const char *text, size_t len, int *outlen)
{
	unsigned long long h = 0xcbf29ce484222325ULL;
	char hex[13], close[32], *out;
	unsigned salt = 0;
	size_t i;

	/*
	 * H is twelve hex digits of the text's 64-bit FNV-1a hash; should
	 * the text hold that closing marker, of the SHA-256 of the text and
	 * a salt, salted again until the text does not hold it.
	 */
	for (i = 0; i < len; i++) {
		h ^= (unsigned char)text[i];
		h *= 0x100000001b3ULL;
	}
	snprintf(hex, sizeof(hex), "%012llx", h >> 16);
	snprintf(close, sizeof(close), "</dt-data-%s>", hex);
	while (memmem(text, len, close, strlen(close)) != NULL) {
		dt_api_digest((struct iovec[]){{(void *)text, len},
		    {&salt, sizeof(salt)}}, 2, hex, 12);
		snprintf(close, sizeof(close), "</dt-data-%s>", hex);
		salt++;
	}
	if ((*outlen = asprintf(&out, "<dt-data-%s>\n%.*s\n%s", hex, (int)len,
	    text, close)) < 0)
		return NULL;
	return out;
}

char *
dt_api_body(const struct dt_api *a, const char *text, size_t tlen,
    size_t *body_len)
{
	json_t *body, *fmt;
	int len;
	char *s, *input = wrap(text, tlen, &len);

	if (input == NULL)
		return NULL;
	fmt = json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema",
	    "json_schema", "name", a->schema_name, "schema", a->schema,
	    "strict", 1);
	if (a->kind == DT_API_CHAT)
		body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s%}], s:o, s:I}",
		    "model", a->model, "messages", "role", "system", "content",
		    a->prompt, "role", "user", "content", input, (size_t)len,
		    "response_format", fmt, "max_tokens",
		    (json_int_t)a->max_output_tokens);
	else
		body = json_pack("{s:s, s:s, s:s%, s:o, s:I}", "model",
		    a->model, "instructions", a->prompt, "input", input,
		    (size_t)len, "response_format", fmt, "max_output_tokens",
		    (json_int_t)a->max_output_tokens);
	if (a->kind == DT_API_CHAT && a->disable_search && !a->web_search)
		json_object_set_new(body, "disable_search", json_true());
	if (a->kind == DT_API_AGENT && a->web_search)
		json_object_set_new(body, "tools",
		    json_pack("[{s:s}]", "type", "web_search"));
	s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	free(input);
	*body_len = s != NULL ? strlen(s) : 0;
	return s;
}

static long long
get_ll(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void
read_usage(int kind, json_t *resp, struct dt_usage *u)
{
	json_t *usage = json_object_get(resp, "usage");
	json_t *cost = json_object_get(usage, "cost");

	memset(u, 0, sizeof(*u));
	u->input_tokens = get_ll(usage, kind == DT_API_CHAT ?
	    "prompt_tokens" : "input_tokens");
	u->output_tokens = get_ll(usage, kind == DT_API_CHAT ?
	    "completion_tokens" : "output_tokens");
	u->total_tokens = get_ll(usage, "total_tokens");
	if (u->total_tokens == 0)
		u->total_tokens = u->input_tokens + u->output_tokens;
	u->cost_usd = json_is_object(cost) ? json_number_value(
	    json_object_get(cost, "total_cost")) : json_number_value(cost);
}

/*
 * The answer's output text, a new string (NULL when there is none): the
 * text of every output_text part of every message item, or chat's
 * choices[0].message.content.
 */
static char *
output_text(int kind, json_t *resp)
{
	json_t *item, *part, *t;
	struct dt_buf b = {0};
	const char *s;
	size_t i, j;

	if (kind == DT_API_CHAT) {
		s = json_string_value(json_object_get(json_object_get(
		    json_array_get(json_object_get(resp, "choices"), 0),
		    "message"), "content"));
		return s != NULL ? strdup(s) : NULL;
	}
	json_array_foreach(json_object_get(resp, "output"), i, item) {
		s = json_string_value(json_object_get(item, "type"));
		if (s == NULL || strcmp(s, "message") != 0)
			continue;
		json_array_foreach(json_object_get(item, "content"), j, part) {
			t = json_object_get(part, "text");
			s = json_string_value(json_object_get(part, "type"));
			if (json_is_string(t) && s != NULL &&
			    strcmp(s, "output_text") == 0)
				dt_buf_add(&b, json_string_value(t),
				    json_string_length(t));
		}
	}
	if (b.oom)
		dt_buf_free(&b);
	return b.p;
}

/*
 * Drops what some models put around the JSON: a leading <think>...</think>
 * block (reasoning models think aloud first) and a Markdown code fence.
 */
static void
strip_fence(const char *s, size_t *start, size_t *len)
{
	static const char ws[] = " \n\r\t";
	size_t b = strspn(s, ws), e = strlen(s);
	const char *end, *nl;

	if (strncmp(s + b, "<think>", 7) == 0 &&
	    (end = strstr(s + b + 7, "</think>")) != NULL)
		b = (size_t)(end - s) + 8 + strspn(end + 8, ws);
	while (e > b && strchr(ws, s[e - 1]) != NULL)
		e--;
	if (e - b >= 6 && strncmp(s + b, "```", 3) == 0 &&
	    strncmp(s + e - 3, "```", 3) == 0 &&
	    (nl = memchr(s + b, '\n', e - b)) != NULL &&
	    (size_t)(nl - s) < e - 3) {
		b = (size_t)(nl - s) + 1;
		e -= 3;
	}
	*start = b;
	*len = e - b;
}

/*
 * What the reply says of the run: DT_API_OK when it completed, else
 * DT_API_FAILED or DT_API_INVALID with why.
 */
static int
reply_status(int kind, json_t *resp, char *why, size_t whylen)
{
	const char *st = json_string_value(json_object_get(resp, "status"));
	const char *m = json_string_value(json_object_get(json_object_get(
	    resp, "error"), "message"));
	const char *r = json_string_value(json_object_get(json_object_get(
	    resp, "incomplete_details"), "reason"));
	const char *fin = json_string_value(json_object_get(json_array_get(
	    json_object_get(resp, "choices"), 0), "finish_reason"));

	if (kind == DT_API_CHAT) {
		if (fin == NULL || strcmp(fin, "length") != 0)
			return DT_API_OK;
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete: finish_reason length");
		return DT_API_INVALID;
	}
	if (st == NULL)
		st = "(none)";
	if (strcmp(st, "completed") == 0)
		return DT_API_OK;
	if (strcmp(st, "failed") == 0) {
		utf8_format(why, whylen, "the API reported status failed%s%s",
		    m ? ": " : "", m ? m : "");
		return DT_API_FAILED;
	}
	if (strcmp(st, "incomplete") == 0)
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete%s%s", r ? ": " : "", r ? r : "");
	else
		utf8_format(why, whylen, "unexpected response status \"%.*s\"",
		    (int)utf8_cut(st, strlen(st), 40), st);
	return DT_API_INVALID;
}

/* Reads the output text into *analysis; DT_API_OK, or why it is not. */
static int
read_output(const struct dt_api *a, const char *text, json_t **analysis,
    char *why, size_t whylen)
{
	json_error_t je;
	json_t *out;
	char verr[300];
	size_t start, tlen;

	strip_fence(text, &start, &tlen);
	if ((out = json_loadb(text + start, tlen, 0, &je)) == NULL) {
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
		return DT_API_INVALID;
	}
	if (a->packed && !json_is_array(json_object_get(out, "results")))
		utf8_format(why, whylen, "the output has no \"results\" array");
	else if (!a->packed && dt_schema_validate(a->schema, out, verr,
	    sizeof(verr)) < 0)
		utf8_format(why, whylen, "the output does not match the "
		    "schema: %s", verr);
	else {
		*analysis = out;
		return DT_API_OK;
	}
	json_decref(out);
	return DT_API_INVALID;
}

int
dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw)
{
	json_error_t je;
	json_t *resp;
	const char *m;
	int rc;

	*analysis = NULL;
	*raw = NULL;
	memset(u, 0, sizeof(*u));
	if ((resp = json_loadb(body, len, 0, &je)) == NULL ||
	    !json_is_object(resp)) {
		utf8_format(why, whylen, "the response is not a JSON "
		    "object%s%s", resp == NULL ? ": " : "",
		    resp == NULL ? je.text : "");
		json_decref(resp);
		*raw = utf8_dup(body, len, DT_API_RAW_MAX);
		return DT_API_INVALID;
	}
	read_usage(a->kind, resp, u);
	m = json_string_value(json_object_get(resp, "model"));
	utf8_format(model, cap, "%s", m != NULL ? m : a->model);
	if ((rc = reply_status(a->kind, resp, why, whylen)) != DT_API_FAILED)
		*raw = output_text(a->kind, resp);
	if (rc == DT_API_OK && *raw == NULL) {
		utf8_format(why, whylen, "the response holds no output text");
		rc = DT_API_INVALID;
	} else if (rc == DT_API_OK)
		rc = read_output(a, *raw, analysis, why, whylen);
	if (rc == DT_API_OK) {
		free(*raw);
		*raw = NULL;
	}
	json_decref(resp);
	return rc;
}

void
dt_api_error_message(const char *body, size_t n, char *buf, size_t len)
{
	json_t *resp = json_loadb(body, n, 0, NULL);
	json_t *e = json_object_get(resp, "error");
	const char *m = json_is_string(e) ? json_string_value(e) :
	    json_string_value(json_object_get(e, "message"));

	utf8_format(buf, len, "%s", m ? m : "");
	json_decref(resp);
}

void
dt_api_error_type(const char *body, size_t n, char *buf, size_t len)
{
	json_t *resp = json_loadb(body, n, 0, NULL);
	json_t *e = json_object_get(resp, "error"), *t;

	if (!json_is_string(t = json_object_get(e, "type")))
		t = json_object_get(e, "code");
	*buf = '\0';
	if (json_is_string(t))
		utf8_format(buf, len, "%s", json_string_value(t));
	else if (json_is_integer(t))
		snprintf(buf, len, "%lld", (long long)json_integer_value(t));
	json_decref(resp);
}

long long
dt_api_estimate_tokens(const char *s, size_t n)
{
	(void)s;
	return (long long)(n + 3) / 4;
}
