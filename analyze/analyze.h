/* analyze.h: what dt-analyze's files share (docs/analyze.md lists them). */
#ifndef DT_ANALYZE_H
#define DT_ANALYZE_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "api.h"
#include "http.h"
#include "ndjson.h"

/* Error kinds, in the order the stage record counts them (dt_az_kinds). */
#define NKINDS 9
enum { K_TIMEOUT, K_RATE, K_UNAVAIL, K_CONFIG, K_4XX, K_INVALID, K_TOOLARGE,
    K_BAD, K_BUDGET };
extern const char *const dt_az_kinds[NKINDS];

/* The settings, as setup.c's table names them; NULL or -1 when unset. */
struct config {
	int api, web_search, disable_search, reject_large;
	const char *base_url, *model, *prompt_file, *schema_file;
	const char *schema_name, *stop_file, *run_id_env, *merge_dir;
	char *key;
	long long timeout_s, first_timeout_s, max_text, max_output_tokens;
	long long pack, rpm, rpm_window_ms, breaker, max_line, slots;
	long long deadline_s, shards;   /* for --estimate */
	double budget, price_in, price_out, price_request;
	struct dt_http_policy pol;
	int dry_run, check_config, preflight, estimate, show_version;
};

/* The stage record's counts, as Jansson writes them. */
struct counts {
	json_int_t records, analyzed, errors, passed, bad, skipped;
	json_int_t kind[NKINDS], tokens, est_in, est_out;
	double cost;
};

struct run {
	struct config c;
	struct dt_api api, pack_api;    /* pack_api: for packed requests */
	char *prompt, *pack_prompt;     /* pack_prompt: with the pack rules */
	json_t *schema, *pack_schema;   /* pack_schema: {"results": [...]} */
	char version[17];               /* prompt_version */
	char url[2048], *auth;
	const char *headers[4];
	struct dt_http *http;
	struct dt_shared *sh;
	char state_dir[4096], run_id[256];
	int own_state_dir, status;
	const char *where;      /* position of the current record */
	struct counts n;
	char last_refused[400]; /* the last 4xx a record of this worker got */
};

/* The signal that arrived, and (call.c) 1 once the stop file was seen. */
extern volatile sig_atomic_t dt_az_signal;
extern int dt_az_stopping;

/* setup.c */

/*
 * Reads the settings and the key and, but for --merge-stages, loads the
 * prompt and the schema and sets up the requests.  Returns 0 with optind
 * at the first file, or the exit status after one error line.
 */
int dt_az_setup(struct run *x, int argc, char **argv);

/* Opens the state the workers of a run share.  Returns 0 or -1 (logged). */
int dt_az_open_state(struct run *x);

/* Frees what dt_az_setup() and dt_az_open_state() set in x. */
void dt_az_teardown(struct run *x);

/* call.c */

/*
 * Sends a request (body, len bytes, built with api) until it has an
 * answer or a final error, under the run's retries, circuit, budget and
 * rate limit; id names it in logs.  Returns 1 with the answer on rec
 * ("analysis", "model", "usage", "latency_ms", "tries"), 0 with an
 * "error" (counted once), -1 when a packed answer cannot be used as a
 * whole (why in rec's "alone"); "tries" and "usage" go on rec whenever
 * calls were made or paid for.  Adds the usage to the run's totals.
 */
int dt_az_send(struct run *x, const struct dt_api *api, const char *body,
    size_t len, json_t *rec, const char *id);

/* Sends one record's text (len bytes): an analysis or an error on rec. */
void dt_az_call(struct run *x, json_t *rec, const char *id,
    const char *text, size_t len);

/* pack.c */

/* A record waiting in a group for its call. */
struct dt_az_item {
	json_t *rec;            /* a reference the group holds */
	char id[256];           /* the record's id, for logs */
	char where[512];        /* where it was read */
	char *cut;              /* the cut text (owned), or NULL */
	const char *text;       /* the text to send, len bytes */
	size_t len;
};

#define DT_AZ_PACK_MAX 100     /* DT_PACK's largest value (setup.c) */
#define DT_AZ_HOLD 4            /* held records per DT_PACK, at most */

/*
 * The records read and not yet written, in input order: those to
 * analyze (calls) and all from the first of them on (held).
 */
struct dt_az_group {
	struct dt_az_item calls[DT_AZ_PACK_MAX];
	json_t *held[DT_AZ_HOLD * DT_AZ_PACK_MAX]; /* references */
	int ncalls, nheld;
};

/*
 * Builds pack_prompt, pack_schema and pack_api when DT_PACK is over 1.
 * A schema that cannot carry an id turns packing off with a warning.
 * Returns 0, or -1 when out of memory (logged).
 */
int dt_az_pack_setup(struct run *x);

/*
 * The packed request body for the n records of it, their ids "1" to
 * "n": a new string the caller frees (its length in *blen), or NULL.
 */
char *dt_az_group_body(struct run *x, struct dt_az_item *it, int n,
    size_t *blen);

/*
 * Takes rec (a reference) to be written at once, or after the group when
 * a record of it waits for a call.  is_call: rec is the next record to
 * analyze (calls[ncalls], filled in but for rec).
 */
void dt_az_hold(struct run *x, struct dt_az_group *g, json_t *rec,
    int is_call);

/*
 * Calls the API for the group's records (with --dry-run, prints the
 * requests), writes every held record in order and empties the group.
 */
void dt_az_flush(struct run *x, struct dt_az_group *g);

/* modes.c */

/* --estimate and --preflight; the exit status. */
int dt_az_estimate(struct run *x);
int dt_az_preflight(struct run *x);

/* --dry-run: prints the request for the n records of it, key masked. */
void dt_az_dry_run(struct run *x, struct dt_az_item *it, int n);

/* output.c */

/* Sets an error of kind k on rec and counts it with its exit status. */
void dt_az_set_error(struct run *x, json_t *rec, int k, int retryable,
    int status, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Counts an error of kind k without setting one. */
void dt_az_count_error(struct run *x, int k, int status);

/* Adds the status the run's end calls for and writes the stage record. */
void dt_az_finish(struct run *x);

/*
 * --merge-stages: writes one stage record summing the jobs' in dir and,
 * while the circuit of sh (or NULL) is closed, the line about records
 * given back.  Returns 0, or the status of a failed write.
 */
int dt_az_merge_stages(const char *dir, struct dt_shared *sh);

#endif
