/*
 * analyze.h: what dt-analyze's files share: its configuration, the state
 * of a run, and the steps every record goes through.
 *
 *   dt-analyze.c  the command line, the per-record loop, main()
 *   setup.c       the environment, the prompt and schema, the HTTP
 *                 client and the state shared with the other workers
 *   call.c        calling the API for one record until it has an
 *                 analysis or a final error
 *   output.c      writing records and the stage record (also from the
 *                 signal handler)
 *   modes.c       --estimate and --preflight
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
	long long rpm, rpm_window_ms;
	double budget;
	long long breaker;
	struct dt_http_policy pol;
	long long max_line;
	long long pipe_bytes;
	long long read_bytes;   /* per read(2) from a pipe on stdin */
	int dry_run;
	int check_config;       /* --check-config: validate and exit */
	int preflight;          /* --preflight */
	int estimate;           /* --estimate */
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
	struct dt_schema *compiled;
	char version[17];
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
/* 1 while an API call is on the wire (the signal handler exits then). */
extern volatile sig_atomic_t dt_az_in_call;
/* 1 once the stop file was seen (dt_az_stop_requested). */
extern int dt_az_stopping;
/* The run, for the signal handler; NULL until the run is set up. */
extern struct run *dt_az_run;
/* 0, or the exit status for it once writing stdout failed. */
extern int dt_az_out_failed;

/* setup.c */

/*
 * Sets *out to 0 when s is zero, to 1 when it is one (DT_API: agent,
 * chat; DT_TOO_LARGE: cut, reject).  Returns 0, or -1 after an error
 * line naming name, the variable or flag.
 */
int dt_az_parse_choice(const char *name, const char *s, const char *zero,
    const char *one, int *out);

/* Reads the environment into c.  Returns 0 or -1 (logged). */
int dt_az_read_env(struct config *c);

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

/* --dry-run: prints what would be sent for one text, with the key masked. */
void dt_az_dry_run(struct run *x, json_t *rec, json_t *id, const char *text,
    size_t len);

/*
 * Sets an error of kind k on rec (dt_record_set_error) and counts it;
 * status is the exit status it calls for.
 */
void dt_az_set_error(struct run *x, json_t *rec, int k, int retryable,
    int status, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Counts an error of kind k without setting one. */
void dt_az_count_error(struct run *x, int k, int status);

/* modes.c */

/* --estimate: reads dt-fetch --backlog's object.  Returns the exit status. */
int dt_az_estimate(struct run *x);

/*
 * --preflight: one tiny request through the run's URL, headers, model,
 * prompt and schema; prints one line.  Returns the exit status.
 */
int dt_az_preflight(struct run *x);

/* output.c */

/* Opens DT_FANOUT_OUTPUT_LOCK, the lock every write to stdout holds. */
void dt_az_open_output_lock(void);

/* Writes rec as one line (dt_emit's format) in one write(2), under the lock. */
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
 * SIGTERM and SIGINT: between calls the loop sees dt_az_signal and ends;
 * during a call the handler writes the stage record and exits 75.
 */
void dt_az_install_signals(void);

/* Closes the output lock and frees emit's buffer. */
void dt_az_close_output(void);

#endif
