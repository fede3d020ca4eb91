/*
 * analyze.h: what dt-analyze's files share: its configuration, the state
 * of a run, and the steps every record goes through.
 *
 *   dt-analyze.c  the command line, the per-record loop, main()
 *   setup.c       the environment, the prompt and schema, the HTTP
 *                 client and the state shared with the other workers
 *   call.c        calling the API for one request until it has an
 *                 answer or a final error
 *   refusal.c     refusals that are the run's setup: the test call, the
 *                 line that says what to fix, the stop file
 *   pack.c        packed requests: several records in one request,
 *                 each item of the answer checked alone
 *   output.c      writing records and the stage record, errors and
 *                 usage on records
 *   modes.c       --estimate, --preflight and --dry-run
 *   stages.c      --merge-stages
 *
 * Names shared between these files begin with dt_az_.
 */
#ifndef DT_ANALYZE_H
#define DT_ANALYZE_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "api.h"
#include "http.h"
#include "retry.h"
#include "ndjson.h"

#define NKINDS 9

/* Error kinds, in the order the stage record counts them (dt_az_kinds). */
enum { K_TIMEOUT, K_RATE, K_UNAVAIL, K_CONFIG, K_4XX, K_INVALID, K_TOOLARGE,
    K_BAD, K_BUDGET };
extern const char *const dt_az_kinds[NKINDS];

struct config {
	int api;
	const char *base_url;
	const char *model;
	char *key;
	int web_search;
	int disable_search;
	long long timeout_s, first_timeout_s;
	const char *prompt_file, *schema_file;
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	const char *schema_name;
	long long max_text;
	int reject_large;
	long long max_output_tokens;
	long long pack;         /* DT_PACK: records per request */
	long long rpm, rpm_window_ms;
	double budget;
	long long breaker;
	struct dt_http_policy pol;
	long long max_line;
	int dry_run;
	int check_config;       /* --check-config: validate and exit */
	int preflight;          /* --preflight */
	int estimate;           /* --estimate */
	int show_version;       /* --prompt-version */
	const char *merge_dir;  /* --merge-stages DIR */
	double price_in, price_out, price_request; /* DT_PRICE_* */
	int prices_set;         /* DT_PRICE_INPUT/OUTPUT_PER_M given */
	int request_price_set;  /* DT_PRICE_PER_REQUEST given */
	const char *run_id_env;
};

struct counts {
	unsigned long records, analyzed, errors, passed, bad, skipped;
	unsigned long kind[NKINDS];
	long long tokens;
	double cost;
	long long est_in, est_out;
};

struct run {
	struct config c;
	struct dt_api api;
	char *prompt;
	json_t *schema;
	char version[17];
	char *pack_prompt;      /* the prompt with the rules for packs */
	json_t *pack_schema;    /* {"results": [analysis + id]} */
	struct dt_api pack_api; /* api with the two above; packed */
	char url[2048];
	char *auth;
	const char *headers[5];
	struct dt_http *http;
	struct dt_shared *sh;
	char state_dir[4096];
	int own_state_dir;
	char run_id[256];
	const char *where;      /* position of the current record */
	struct counts n;
	int status;
	const char *message;
	int seen_success;
	char last_refused[400];  /* the last 4xx a record of this worker got */
};

/* The signal that arrived (SIGTERM, SIGINT), 0 before one did. */
extern volatile sig_atomic_t dt_az_signal;
/* 1 once the stop file was seen (stop_requested() in call.c). */
extern int dt_az_stopping;
/* 0, or the exit status for it once writing stdout failed. */
extern int dt_az_out_failed;

/* setup.c */

/*
 * Reads the command line and the environment into c from dt-analyze's
 * table of settings (lib/config.h): --help and --version print and
 * exit here.  Returns 0, or the exit status (64 usage, 78 a bad
 * setting).  optind is then the first file.
 */
int dt_az_configure(struct config *c, int argc, char **argv);

/*
 * Loads the prompt and the schema, checks the model name and derives
 * prompt_version; then builds the URL and headers and, unless
 * --dry-run, the HTTP client.  Returns 0, or -1 after one error line.
 * What it sets in x is freed by dt_az_teardown().
 */
int dt_az_setup(struct run *x);

/*
 * Opens the state the workers of a run share (DT_STATE_DIR, else one
 * directory per run id, else a private one).  Returns 0 or -1 (logged).
 */
int dt_az_open_state(struct run *x);

/* Frees what dt_az_setup() and dt_az_open_state() set in x. */
void dt_az_teardown(struct run *x);

/* call.c */

/*
 * Sends one record's text (len bytes) until it has an analysis or a
 * final error, and sets either on rec; id names the record in logs.
 */
void dt_az_call(struct run *x, json_t *rec, const char *id,
    const char *text, size_t len);

/*
 * What dt_az_send() got: the usage of every call, the calls made, the
 * last call's latency and model, and why the answer was not taken.
 */
struct dt_az_sent {
	json_t *answer;         /* DT_AZ_ANSWERED: a new reference */
	struct dt_usage sum;
	int tries;
	long long latency_ms;
	char model[128];
	char why[600];
};

enum {
	DT_AZ_ANSWERED = 0,     /* out->answer holds the answer */
	DT_AZ_ERROR = 1,        /* an error is set on rec (and counted once) */
	DT_AZ_ALONE = 2         /* a packed answer cannot be used as a whole
				 * (out->why): send each message alone */
};

/*
 * Sends a request (body, len bytes, built with api) until it has an
 * answer or a final error, under the run's retries, circuit, budget and
 * rate limit.  Errors go on rec; id names the request in logs.  Adds
 * the usage to the run's totals.  Returns DT_AZ_*; fills out.
 */
int dt_az_send(struct run *x, const struct dt_api *api, const char *body,
    size_t len, json_t *rec, const char *id, struct dt_az_sent *out);

/*
 * Sleeps ms milliseconds; returns 1 early on a signal or once the stop
 * file appears, else 0.
 */
int dt_az_nap(struct run *x, long long ms);

/* Creates the stop file (NULL: none): the run claims no more. */
void dt_az_stop_the_run(const char *stop_file);

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

/*
 * Builds pack_prompt, pack_schema and pack_api from the prompt and
 * schema when DT_PACK is over 1.  A schema that is not an object with
 * properties cannot carry an id: packing is turned off (c.pack = 1)
 * with a warning.  Returns 0, or -1 when out of memory (logged).
 */
int dt_az_pack_setup(struct run *x);

/*
 * The packed request body for the n records of it: the ids sent are
 * their places in the group, "1" to "n", short and unique even when
 * two records share an id; max_output_tokens is DT_MAX_OUTPUT_TOKENS
 * times n, at most 16384 (or DT_MAX_OUTPUT_TOKENS when that is more).
 * A new string the caller frees (its length in *blen), or NULL.
 */
char *dt_az_group_body(struct run *x, struct dt_az_item *it, int n,
    size_t *blen);

/*
 * The records read and not yet written, in input order: those to
 * analyze (up to DT_PACK, in calls) and, once there is one, the records
 * read after it that need no call, held so that the output keeps the
 * input's order (up to DT_AZ_HOLD times DT_PACK records in all).
 */
struct dt_az_group {
	struct dt_az_item *calls;
	int ncalls;
	json_t **held;          /* references, in input order */
	unsigned char *is_call; /* held[i] is in calls */
	int nheld, cap;
};

#define DT_AZ_HOLD 4

/* Allocates g for DT_PACK pack.  Returns 0, or -1 when out of memory. */
int dt_az_group_init(struct dt_az_group *g, long long pack);

/* Frees what dt_az_group_init() allocated (g zeroed: nothing). */
void dt_az_group_free(struct dt_az_group *g);

/*
 * Takes rec (a reference) to be written: at once when no record waits
 * for a call, else after the group.  is_call: rec is the group's next
 * record to analyze (calls[ncalls], already filled in but for rec).
 */
void dt_az_hold(struct run *x, struct dt_az_group *g, json_t *rec,
    int is_call);

/*
 * Calls the API for the group's records (or, with --dry-run, prints
 * the requests), writes every held record in order and empties it.
 */
void dt_az_flush(struct run *x, struct dt_az_group *g);

/*
 * --dry-run: prints the request for the n records of it (one request, a
 * single one for n == 1), with the key masked, and counts its estimate.
 */
void dt_az_dry_run(struct run *x, struct dt_az_item *it, int n);

/*
 * Sets analysis (stolen) on rec with o's model, latency and tries, the
 * usage u and, when pack is over 0, "pack":{"size":pack}; counts it.
 */
void dt_az_set_analysis(struct run *x, json_t *rec, json_t *analysis,
    const struct dt_az_sent *o, const struct dt_usage *u, int pack);

/*
 * Sets an error of kind k on rec (dt_record_set_error) and counts it;
 * status is the exit status it calls for.
 */
void dt_az_set_error(struct run *x, json_t *rec, int k, int retryable,
    int status, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Counts an error of kind k without setting one. */
void dt_az_count_error(struct run *x, int k, int status);

/* The record's "usage" for u: a new object, or NULL when out of memory. */
json_t *dt_az_usage_json(const struct dt_usage *u);

/* modes.c */

/* --estimate: reads dt-fetch --backlog's object.  Returns the exit status. */
int dt_az_estimate(struct run *x);

/*
 * --preflight: one tiny request through the run's URL, headers, model,
 * prompt and schema; prints one line.  Returns the exit status.
 */
int dt_az_preflight(struct run *x);

/* stages.c */

/*
 * --merge-stages: writes one stage record summing those the workers of
 * a fan-out left in dir ("stage.*" files; dt_az_open_stage_file): counts,
 * tokens, cost and CPU added up, the largest peak memory, the most severe
 * status with its message, interrupted when any was.  Writes nothing when
 * there is none.  Then, when the jobs left "refused.*" files and the
 * run's circuit (sh, the shared state; may be NULL) is closed, says how
 * many records the API refused one by one, as dt-analyze alone does.
 * Returns 0, or the exit status of a failed read or write.
 */
int dt_az_merge_stages(const char *dir, struct dt_shared *sh);

/* output.c */

/*
 * Under dt-fanout, opens the file in DT_FANOUT_STAGE_DIR the stage record
 * goes to instead of stdout.
 */
void dt_az_open_stage_file(void);

/* Writes rec as one line (dt_emit's format) in one write(2). */
void dt_az_emit(json_t *rec);

/*
 * Writes the stage record (docs/pipeline.md) with the given status and
 * message (NULL: null).
 */
void dt_az_emit_stage(struct run *x, int status, const char *message,
    int interrupted);

/* Takes the run id from DT_RUN_ID, else from rec's run_id (rec may be NULL). */
void dt_az_take_run_id(struct run *x, json_t *rec);

/*
 * SIGTERM and SIGINT set dt_az_signal: waits end, a call on the wire is
 * abandoned (within about a second), the records not answered get
 * "interrupted before the API answered" and the run ends with its stage
 * record, interrupted, exit 75.
 */
void dt_az_install_signals(void);

/*
 * How the input loop ended: the exit status it adds to x and the line
 * about rows given back.  Returns 1 when the run was interrupted (a
 * signal, the stop file), not stopped by its own circuit.
 */
int dt_az_end_of_run(struct run *x);

/* The stage record's message for x's status (NULL when all went well). */
const char *dt_az_final_message(struct run *x, int interrupted);

/* Closes the stage file and frees emit's buffer. */
void dt_az_close_output(void);

#endif
