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
	int packed;             /* the packed schema: dt_api_parse checks
				 * only for a "results" array (pack.c checks
				 * each item) */
};

struct dt_usage {
	long long input_tokens;
	long long output_tokens;
	long long total_tokens;
	double cost_usd;        /* the API's own total, 0 when it sent none */
};

enum {
	DT_API_OK = 0,          /* *analysis holds a valid analysis */
	DT_API_FAILED = 1,      /* the API says the run failed (outage) */
	DT_API_INVALID = 2      /* output missing, cut short, not JSON or
				 * not valid against the schema */
};

/* Bytes of a response body that is not JSON kept in dt_api_parse's *raw. */
#define DT_API_RAW_MAX 4096

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
 * Reads a 2xx response body.  Fills *u with the usage the API reported
 * (zeros when none) and model (cap bytes) with the model that answered.
 * Returns DT_API_OK with a new reference in *analysis (with a->packed,
 * the whole {"results": [...]}); otherwise a description in why and,
 * when the API returned output text, a new string with it in *raw (or
 * the first DT_API_RAW_MAX bytes of a body that is not JSON).  model,
 * why and *raw are valid UTF-8.
 */
int dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw);

/*
 * The message of an error body ({"error":{"message":...}} or
 * {"error":"..."}) into buf, cut on a character to fit; "" when none.
 */
void dt_api_error_message(const char *body, size_t n, char *buf, size_t len);

/*
 * The error's "type", else its "code", into buf; "" when none.  The
 * same answer for different records tells a setup error.
 */
void dt_api_error_type(const char *body, size_t n, char *buf, size_t len);

/* Rough token count of n bytes (about four a token), for estimates. */
long long dt_api_estimate_tokens(const char *s, size_t n);

#endif
