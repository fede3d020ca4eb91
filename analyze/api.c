/*
 * api.c: request bodies and response reading for the Agent API and chat
 * completions; docs/analyze.md describes the shapes.
 */
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

char *
dt_api_wrap(const char *text, size_t len)
{
	struct dt_sha256 c;
	unsigned char dig[32];
	char hex[13], close[32], *out;
	size_t n;
	unsigned salt = 0;

	/*
	 * The marker comes from the text's own hash, so the text would have
	 * to contain a hash of itself to close the block early; the salt
	 * loop covers even that.
	 */
	for (;;) {
		dt_sha256_init(&c);
		dt_sha256_update(&c, text, len);
		if (salt > 0)
			dt_sha256_update(&c, &salt, sizeof(salt));
		dt_sha256_final(&c, dig);
		dt_sha256_tohex(dig, hex, 12);
		snprintf(close, sizeof(close), "</dt-data-%s>", hex);
		if (memmem(text, len, close, strlen(close)) == NULL)
			break;
		salt++;
	}
	n = len + 2 * strlen(close) + 64;
	if ((out = malloc(n)) == NULL)
		return NULL;
	snprintf(out, n, "<dt-data-%s>\n%.*s\n%s", hex, (int)len, text, close);
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
 * The chat form keeps the user message last too: the static head ends
 * inside the messages list, after the system message.
 */
int
dt_api_prepare(struct dt_api *a)
{
	json_t *body;
	char *s;
	size_t n;

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
	n = strlen(s);
	s[n - 1] = '\0';        /* drop the closing brace */
	a->head = s;
	return 0;
}

void
dt_api_release(struct dt_api *a)
{
	free(a->head);
	a->head = NULL;
}

/* Appends n bytes of s at *o in out. */
static void
put(char *out, size_t *o, const char *s, size_t n)
{
	memcpy(out + *o, s, n);
	*o += n;
}

char *
dt_api_body(const struct dt_api *a, const char *input)
{
	static const char chat1[] = ",\"messages\":[{\"role\":\"system\","
	    "\"content\":";
	static const char chat2[] = "},{\"role\":\"user\",\"content\":";
	static const char chat3[] = "}]}";
	static const char agent1[] = ",\"input\":";
	json_t *str;
	char *esc, *esys = NULL, *out = NULL;
	size_t hl = strlen(a->head), el, sl = 0, o = 0;

	if ((str = json_string(input)) == NULL)
		return NULL;
	esc = json_dumps(str, JSON_ENCODE_ANY);
	json_decref(str);
	if (esc == NULL)
		return NULL;
	el = strlen(esc);
	if (a->kind == DT_API_CHAT) {
		if ((str = json_string(a->prompt)) == NULL ||
		    (esys = json_dumps(str, JSON_ENCODE_ANY)) == NULL) {
			json_decref(str);
			free(esc);
			return NULL;
		}
		json_decref(str);
		sl = strlen(esys);
	}
	if ((out = malloc(hl + el + sl + sizeof(chat1) + sizeof(chat2) +
	    sizeof(chat3))) == NULL)
		goto done;
	put(out, &o, a->head, hl);
	if (a->kind == DT_API_CHAT) {
		put(out, &o, chat1, sizeof(chat1) - 1);
		put(out, &o, esys, sl);
		put(out, &o, chat2, sizeof(chat2) - 1);
		put(out, &o, esc, el);
		put(out, &o, chat3, sizeof(chat3));
	} else {
		put(out, &o, agent1, sizeof(agent1) - 1);
		put(out, &o, esc, el);
		put(out, &o, "}", 2);
	}
done:
	free(esys);
	free(esc);
	return out;
}

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

	memset(u, 0, sizeof(*u));
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
	if (u->total_tokens == 0)
		u->total_tokens = u->input_tokens + u->output_tokens;
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
static char *
agent_text(json_t *resp)
{
	json_t *output = json_object_get(resp, "output"), *item, *part;
	size_t i, j, n = 0;
	char *s = NULL;

	json_array_foreach(output, i, item) {
		if (!json_is_object(item) || !json_is_string(json_object_get(item,
		    "type")) || strcmp(json_string_value(json_object_get(item,
		    "type")), "message") != 0)
			continue;
		json_array_foreach(json_object_get(item, "content"), j, part) {
			json_t *t = json_object_get(part, "text");
			const char *pt = json_string_value(json_object_get(part,
			    "type"));
			char *p;

			if (!json_is_string(t) || pt == NULL ||
			    strcmp(pt, "output_text") != 0)
				continue;
			if ((p = realloc(s, n + json_string_length(t) + 1)) ==
			    NULL) {
				free(s);
				return NULL;
			}
			s = p;
			memcpy(s + n, json_string_value(t),
			    json_string_length(t));
			n += json_string_length(t);
			s[n] = '\0';
		}
	}
	return s;
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

int
dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw)
{
	json_error_t je;
	json_t *resp, *v, *out = NULL;
	const char *status;
	char *text = NULL, verr[300];
	size_t start, tlen;
	int rc = DT_API_INVALID;

	*analysis = NULL;
	*raw = NULL;
	memset(u, 0, sizeof(*u));
	if ((resp = json_loadb(body, len, 0, &je)) == NULL ||
	    !json_is_object(resp)) {
		utf8_format(why, whylen, "the response is not a JSON object%s%s",
		    resp == NULL ? ": " : "", resp == NULL ? je.text : "");
		json_decref(resp);
		*raw = utf8_dup(body, len, DT_API_RAW_MAX);
		return DT_API_INVALID;
	}
	read_usage(a->kind, resp, u);
	v = json_object_get(resp, "model");
	utf8_format(model, cap, "%s", json_is_string(v) ?
	    json_string_value(v) : a->model);

	if (a->kind == DT_API_AGENT) {
		status = json_string_value(json_object_get(resp, "status"));
		if (status == NULL)
			status = "(none)";
		if (strcmp(status, "failed") == 0) {
			json_t *e = json_object_get(resp, "error");
			const char *m = json_string_value(json_object_get(e,
			    "message"));

			utf8_format(why, whylen, "the API reported status failed%s%s",
			    m ? ": " : "", m ? m : "");
			rc = DT_API_FAILED;
			goto out;
		}
		text = agent_text(resp);
		if (strcmp(status, "incomplete") == 0) {
			const char *r = json_string_value(json_object_get(
			    json_object_get(resp, "incomplete_details"),
			    "reason"));

			utf8_format(why, whylen, "the API reported the output "
			    "incomplete%s%s", r ? ": " : "", r ? r : "");
			goto out;
		}
		if (strcmp(status, "completed") != 0) {
			utf8_format(why, whylen, "unexpected response status "
			    "\"%.*s\"", (int)utf8_cut(status, strlen(status), 40),
			    status);
			goto out;
		}
	} else {
		json_t *choice = json_array_get(json_object_get(resp,
		    "choices"), 0);
		json_t *content = json_object_get(json_object_get(choice,
		    "message"), "content");
		const char *fin = json_string_value(json_object_get(choice,
		    "finish_reason"));

		if (json_is_string(content))
			text = strdup(json_string_value(content));
		if (fin != NULL && strcmp(fin, "length") == 0) {
			utf8_format(why, whylen, "the API reported the output "
			    "incomplete: finish_reason length");
			goto out;
		}
	}
	if (text == NULL) {
		utf8_format(why, whylen, "the response holds no output text");
		goto out;
	}
	strip_fence(text, strlen(text), &start, &tlen);
	if ((out = json_loadb(text + start, tlen, 0, &je)) == NULL) {
		utf8_format(why, whylen, "the output is not JSON: %s", je.text);
		goto out;
	}
	if (dt_schema_validate(a->schema, out, verr, sizeof(verr)) < 0) {
		utf8_format(why, whylen, "the output does not match the schema: "
		    "%s", verr);
		goto out;
	}
	*analysis = out;
	out = NULL;
	rc = DT_API_OK;
out:
	json_decref(out);
	json_decref(resp);
	if (rc != DT_API_OK)
		*raw = text;
	else
		free(text);
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
