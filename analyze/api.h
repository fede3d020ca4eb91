/*
 * api.h: the two request shapes dt-analyze speaks (Perplexity's Agent
 * API and OpenAI-compatible chat completions) and what it reads back.
 */
#ifndef DT_API_H
#define DT_API_H

#include <sys/uio.h>

#include <stddef.h>

#include <jansson.h>

enum {
	DT_API_AGENT = 0,       /* POST {base}/v1/agent */
	DT_API_CHAT = 1         /* POST {base}/chat/completions */
};

/* What one request needs besides the user's text. */
struct dt_api {
	int kind;               /* DT_API_AGENT or DT_API_CHAT */
	const char *model;
	const char *prompt;     /* the instructions */
	json_t *schema;         /* borrowed */
	const char *schema_name;
	long long max_output_tokens;
	int web_search;         /* agent: add the web_search tool */
	int disable_search;     /* chat: send "disable_search": true */
	int packed;             /* check the answer for "results" only */
};

enum {
	DT_API_OK = 0,          /* a valid analysis */
	DT_API_FAILED = 1,      /* the API says the run failed (outage) */
	DT_API_INVALID = 2      /* output missing, cut short, not JSON or
				 * not valid against the schema */
};

/*
 * Writes the first nhex hex digits of the SHA-256 of the n parts, one
 * after the other, into hex (nhex + 1 bytes, at most 64 digits).
 */
void dt_api_digest(const struct iovec *parts, int n, char *hex, size_t nhex);

/*
 * The request body for one text (len bytes of UTF-8) inside its data
 * block: <dt-data-H>, the text and </dt-data-H> on lines of their own,
 * H derived from the text so that it cannot hold its own closing
 * marker.  A new compact string the caller frees, its length in
 * *body_len, or NULL when out of memory.
 */
char *dt_api_body(const struct dt_api *a, const char *text, size_t len,
    size_t *body_len);

/*
 * Reads a 2xx response body into *reply, a new object (NULL only when
 * out of memory): "model", the model that answered; "usage", as a
 * record has it; with DT_API_OK "analysis" (with a->packed, the whole
 * {"results": [...]}), else "why" and, when the API returned output
 * text or a body that is not JSON, its first 1 KiB in "output", cut on
 * a character, with "output_cut": true when cut.  Returns DT_API_*.
 */
int dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **reply);

/* Adds the numbers of the usage from to those of to (both a record's). */
void dt_api_add_usage(json_t *to, json_t *from);

/*
 * The message of an error body ({"error":{"message":...}} or
 * {"error":"..."}) into msg, and its "type", else its "code", into type
 * (may be NULL), each cut on a character to fit; "" when none.
 */
void dt_api_error(const char *body, size_t n, char *msg, size_t mlen,
    char *type, size_t tlen);

/* Rough token count of n bytes (about four a token), for estimates. */
long long dt_api_estimate_tokens(size_t n);

#endif
