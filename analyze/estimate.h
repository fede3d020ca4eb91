/*
 * estimate.h: what a backlog will take, for dt-entrypoint --dry-run
 * (dt-fetch --backlog | dt-analyze --estimate).
 */
#ifndef DT_ESTIMATE_H
#define DT_ESTIMATE_H

#include <stdio.h>

#include <jansson.h>

/* A model's published prices in USD. */
struct dt_price {
	const char *model;
	double in, out;         /* per million input, output tokens */
	double request;         /* per request */
};

/*
 * The prices of the default models (estimate.c has the table and where
 * each figure comes from), or NULL for a model not in it.  The defaults
 * of DT_PRICE_INPUT_PER_M, DT_PRICE_OUTPUT_PER_M and DT_PRICE_PER_REQUEST.
 */
const struct dt_price *dt_price_of(const char *model);

/* The Agent API's web_search tool, per invocation (the pricing page). */
#define DT_PRICE_WEB_SEARCH 0.005

/* What dt-analyze knows of a run, besides dt-fetch --backlog's answer. */
struct dt_estimate {
	const char *model;
	long long rpm;              /* DT_RPM, 0: no limit */
	long long deadline_s;       /* DT_DEADLINE_SECONDS */
	long long shards;           /* DT_SHARDS */
	long long max_text;         /* DT_MAX_TEXT_BYTES */
	long long fixed_tokens;     /* a text's share of a request's tokens
				     * without the texts */
	long long pack;             /* DT_PACK: texts per request */
	long long max_output_tokens;
	int web_search;
	double price_in, price_out; /* USD per million tokens */
	double price_request;       /* USD per request */
	int prices_known;           /* set, or the model's from the table */
	double budget;              /* DT_BUDGET_USD, 0: none */
};

/*
 * Expected output tokens of one answer for a text of text_tokens tokens:
 * 100 (the schema's names, an enum value, a number, the JSON around
 * them) plus half the text's (the summary, topics and action items say
 * again, shorter, what the text said), at most max_output_tokens.
 */
long long dt_estimate_output_tokens(long long text_tokens,
    long long max_output_tokens);

/*
 * Reads dt-fetch --backlog's object (borrowed) and prints the estimate
 * on out: the backlog, the runs it takes, the tokens per text and the
 * cost, and with "history" what the last analyses really cost.
 * Returns 0, or -1 after logging when the object is not what
 * dt-fetch --backlog writes.
 */
int dt_estimate_print(const struct dt_estimate *e, json_t *fetch, FILE *out);

#endif
