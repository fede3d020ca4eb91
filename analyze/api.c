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

#define OUTPUT_KEEP 1024        /* bytes of bad output kept */

void
dt_api_digest(const struct iovec *parts, int n, char *hex, size_t nhex)
{
	unsigned char dig[EVP_MAX_MD_SIZE] = {0};
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int i, ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL);

	for (i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(c, parts[i].iov_base, parts[i].iov_len);
	/* Without a digest (out of memory) the hex is all zeros. */
	if (!ok || !EVP_DigestFinal_ex(c, dig, NULL))
		memset(dig, 0, sizeof(dig));
	EVP_MD_CTX_free(c);
	for (i = 0; i < (int)nhex; i++)
		hex[i] = "0123456789abcdef"[dig[i / 2] >> (i % 2 ? 0 : 4) & 15];
	hex[nhex] = '\0';
}

/*
 * The data block of dt_api_body(), a new string or NULL: H is the first
 * twelve hex digits of the SHA-256 of the text, salted until the text
 * does not hold the closing marker.
 */
static char *
wrap(const char *text, size_t len, int *outlen)
{
	char hex[13], close[32], *out;
	unsigned salt = 0;

	do {
		dt_api_digest((struct iovec[]){{(void *)text, len},
		    {&salt, salt > 0 ? sizeof(salt) : 0}}, 2, hex, 12);
		snprintf(close, sizeof(close), "</dt-data-%s>", hex);
		salt++;
	} while (memmem(text, len, close, strlen(close)) != NULL);
	if ((*outlen = asprintf(&out, "<dt-data-%s>\n%.*s\n%s", hex, (int)len,
	    text, close)) < 0)
		return NULL;
	return out;
}

char *
dt_api_body(const struct dt_api *a, const char *text, size_t tlen,
    size_t *body_len)
{
	int len, chat = a->kind == DT_API_CHAT;
	char *s = NULL, *input = wrap(text, tlen, &len);
	json_t *in = input != NULL ? json_stringn(input, (size_t)len) : NULL;
	json_t *body = json_pack("{s:s, s:s*, s:O*, s:o*, s:{s:s, s:{s:s, "
	    "s:O, s:b}}, s:I, s:o*, s:o*}", "model", a->model, "instructions",
	    chat ? NULL : a->prompt, "input", chat ? NULL : in, "messages",
	    chat ? json_pack("[{s:s, s:s}, {s:s, s:O}]", "role", "system",
	    "content", a->prompt, "role", "user", "content", in) : NULL,
	    "response_format", "type", "json_schema", "json_schema", "name",
	    a->schema_name, "schema", a->schema, "strict", 1,
	    chat ? "max_tokens" : "max_output_tokens",
	    (json_int_t)a->max_output_tokens, "disable_search", chat &&
	    a->disable_search && !a->web_search ? json_true() : NULL, "tools",
	    !chat && a->web_search ? json_pack("[{s:s}]", "type",
	    "web_search") : NULL);

	if (in != NULL && body != NULL)
		s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_decref(in);
	free(input);
	*body_len = s != NULL ? strlen(s) : 0;
	return s;
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

	if (kind == DT_API_CHAT)
		return json_unpack(resp, "{s:[{s:{s:s}}]}", "choices",
		    "message", "content", &s) == 0 ? strdup(s) : NULL;
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

	if (st == NULL)
		st = "(none)";
	if (kind == DT_API_CHAT ? fin == NULL || strcmp(fin, "length") != 0 :
	    strcmp(st, "completed") == 0)
		return DT_API_OK;
	if (kind == DT_API_CHAT)
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete: finish_reason length");
	else if (strcmp(st, "failed") == 0) {
		utf8_format(why, whylen, "the API reported status failed%s%s",
		    m ? ": " : "", m ? m : "");
		return DT_API_FAILED;
	} else if (strcmp(st, "incomplete") == 0)
		utf8_format(why, whylen, "the API reported the output "
		    "incomplete%s%s", r ? ": " : "", r ? r : "");
	else
		utf8_format(why, whylen, "unexpected response status \"%.*s\"",
		    (int)utf8_cut(st, strlen(st), 40), st);
	return DT_API_INVALID;
}

/*
 * Reads the output text s (NULL: none), without a leading <think>
 * block (reasoning models think aloud first) and a Markdown code fence,
 * into *out: DT_API_OK, or DT_API_INVALID with why.
 */
static int
read_output(const struct dt_api *a, const char *s, json_t **out,
    char *why, size_t whylen)
{
	static const char ws[] = " \n\r\t";
	const char *end, *nl;
	json_error_t je;
	char verr[300];
	size_t b, e;

	if (s == NULL) {
		utf8_format(why, whylen, "the response holds no output text");
		return DT_API_INVALID;
	}
	b = strspn(s, ws);
	e = strlen(s);
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
	if ((*out = json_loadb(s + b, e - b, 0, &je)) == NULL)
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
	else if (a->packed && !json_is_array(json_object_get(*out, "results")))
		utf8_format(why, whylen, "the output has no \"results\" array");
	else if (!a->packed && dt_schema_validate(a->schema, *out, verr,
	    sizeof(verr)) < 0)
		utf8_format(why, whylen, "the output does not match the "
		    "schema: %s", verr);
	else
		return DT_API_OK;
	json_decref(*out);
	*out = NULL;
	return DT_API_INVALID;
}

int
dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **reply)
{
	int chat = a->kind == DT_API_CHAT, rc = DT_API_INVALID;
	json_error_t je;
	json_t *resp = json_loadb(body, len, 0, &je), *out = NULL;
	json_t *u = json_object_get(resp, "usage");
	json_t *cost = json_object_get(u, "cost");
	json_int_t in = json_integer_value(json_object_get(u, chat ?
	    "prompt_tokens" : "input_tokens"));
	json_int_t done = json_integer_value(json_object_get(u, chat ?
	    "completion_tokens" : "output_tokens"));
	json_int_t total = json_integer_value(json_object_get(u,
	    "total_tokens"));
	const char *m = json_string_value(json_object_get(resp, "model"));
	char why[600], model[128], *text = NULL;
	size_t n;

	if (!json_is_object(resp)) {
		utf8_format(why, sizeof(why), "the response is not a JSON "
		    "object%s%s", resp == NULL ? ": " : "",
		    resp == NULL ? je.text : "");
		text = utf8_dup(body, len, OUTPUT_KEEP + 4);
	} else if ((rc = reply_status(a->kind, resp, why, sizeof(why))) !=
	    DT_API_FAILED) {
		text = output_text(a->kind, resp);
		if (rc == DT_API_OK)
			rc = read_output(a, text, &out, why, sizeof(why));
	}
	utf8_format(model, sizeof(model), "%s", m != NULL ? m : a->model);
	n = text != NULL ? utf8_cut(text, strlen(text), OUTPUT_KEEP) : 0;
	*reply = json_pack("{s:s, s:{s:I, s:I, s:I, s:f}, s:o*, s:s*, s:o*, "
	    "s:o*}", "model", model, "usage", "prompt_tokens", in,
	    "completion_tokens", done, "total_tokens", total != 0 ? total :
	    in + done, "cost_usd", json_is_object(cost) ? json_number_value(
	    json_object_get(cost, "total_cost")) : json_number_value(cost),
	    "analysis", out, "why", rc == DT_API_OK ? NULL : why, "output",
	    rc != DT_API_OK && text != NULL ? json_stringn(text, n) : NULL,
	    "output_cut", rc != DT_API_OK && text != NULL && text[n] != '\0' ?
	    json_true() : NULL);
	json_decref(resp);
	free(text);
	return *reply != NULL ? rc : DT_API_INVALID;
}

void
dt_api_add_usage(json_t *to, json_t *from)
{
	json_t *v, *t;
	const char *k;

	json_object_foreach(from, k, v) {
		t = json_object_get(to, k);
		json_object_set_new(to, k, json_is_integer(v) ? json_integer(
		    json_integer_value(t) + json_integer_value(v)) :
		    json_real(json_number_value(t) + json_number_value(v)));
	}
}

void
dt_api_error(const char *body, size_t n, char *msg, size_t mlen, char *type,
    size_t tlen)
{
	json_t *resp = json_loadb(body, n, 0, NULL);
	json_t *e = json_object_get(resp, "error");
	json_t *t = json_object_get(e, "type");
	const char *m = json_is_string(e) ? json_string_value(e) :
	    json_string_value(json_object_get(e, "message"));

	utf8_format(msg, mlen, "%s", m ? m : "");
	if (!json_is_string(t))
		t = json_object_get(e, "code");
	if (type != NULL && json_is_integer(t))
		snprintf(type, tlen, "%lld", (long long)json_integer_value(t));
	else if (type != NULL)
		utf8_format(type, tlen, "%s", json_is_string(t) ?
		    json_string_value(t) : "");
	json_decref(resp);
}

long long
dt_api_estimate_tokens(size_t n)
{
	return (long long)(n + 3) / 4;
}
