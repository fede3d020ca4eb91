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
	int packed;             /* schema is the packed one: dt_api_parse
				 * checks only that the output is an object
				 * with a "results" array; the caller checks
				 * each item (analyze/pack.c) */
};

struct dt_usage {
	long long input_tokens;
	long long output_tokens;
	long long total_tokens;
	double cost_usd;        /* the API's own total, 0 when it sent none */
	int have_cost;
};

enum {
	DT_API_OK = 0,          /* *analysis holds a valid analysis */
	DT_API_FAILED = 1,      /* the API says the run failed (outage) */
	DT_API_INVALID = 2      /* output missing, cut short, not JSON or
				 * not valid against the schema */
};

/*
 * Writes the first nhex hex digits of the SHA-256 of the parts, one
 * after the other, into hex (nhex + 1 bytes, at most 64 digits).
 */
void dt_api_digest(const struct iovec *parts, int n, char *hex, size_t nhex);

/*
 * Returns the data block that carries the user's text (len bytes): a
 * marker line <dt-data-H>, the text, and </dt-data-H>, where H is
 * derived from the text so that the text cannot contain its own closing
 * marker.  A new string the caller frees, its length in *outlen, or
 * NULL when out of memory.
 */
char *dt_api_wrap(const char *text, size_t len, size_t *outlen);

/*
 * Builds the request body for one text (already wrapped, len bytes of
 * UTF-8).  Returns a new JSON object, or NULL when out of memory.
 */
json_t *dt_api_request(const struct dt_api *a, const char *input,
    size_t len);

/*
 * Returns dt_api_request() serialized (compact): a new string the
 * caller frees, its length in *body_len, or NULL when out of memory.
 */
char *dt_api_body(const struct dt_api *a, const char *input, size_t len,
    size_t *body_len);

/* Bytes of a response body that is not JSON kept in dt_api_parse's *raw. */
#define DT_API_RAW_MAX 4096

/*
 * Reads a 2xx response body.  With a->packed the analysis is the whole
 * packed answer, {"results": [...]}, its items not yet checked.  Fills *u with what the API reported
 * (zeros when it reported nothing) and model (cap bytes) with the model
 * that answered.  Returns DT_API_OK with a new reference in *analysis;
 * otherwise a description in why and, when the API returned some output
 * text, a new string with it in *raw (the caller frees it): the output
 * text, or the first DT_API_RAW_MAX bytes of a body that is not JSON.
 * model, why and *raw are valid UTF-8 (cut on a character boundary when
 * they do not fit; bytes of a body that are not UTF-8 become U+FFFD).
 */
int dt_api_parse(const struct dt_api *a, const char *body, size_t len,
    json_t **analysis, struct dt_usage *u, char *model, size_t cap,
    char *why, size_t whylen, char **raw);

/*
 * Reads the message of an error body ({"error":{"message":...}} or
 * {"error":"..."}) into buf, cut on a character boundary to fit len
 * bytes; "" when there is none.
 */
void dt_api_error_message(const char *body, size_t n, char *buf, size_t len);

/*
 * Reads what kind of error an error body reports: its error's "type",
 * else its "code" (a string or a number), into buf (len bytes); "" when
 * there is none.  The same message and type for different records is
 * what tells a setup error from a record's own.
 */
void dt_api_error_type(const char *body, size_t n, char *buf, size_t len);

/* Rough token count of s (about four bytes a token), for estimates. */
long long dt_api_estimate_tokens(const char *s, size_t n);

#endif
