/*
 * supabase.h: calls to Supabase's data API (PostgREST under /rest/v1),
 * shared by dt-fetch and dt-store.
 *
 * The service key travels in the "apikey" and "Authorization: Bearer"
 * headers only; it is registered with the log's redaction and never
 * printed.  Errors are described from PostgREST's body (code, message,
 * hint) so a person sees what the server said.
 */
#ifndef DT_SUPABASE_H
#define DT_SUPABASE_H

#include <stddef.h>

#include <jansson.h>

struct dt_supabase;

/* What a failed call means for the caller. */
enum {
	DT_SB_OK = 0,          /* 2xx */
	DT_SB_UNAVAILABLE = 1, /* connection failed, 5xx or 429 after retries */
	DT_SB_TIMEOUT = 2,     /* timed out after retries */
	DT_SB_CONFIG = 3,      /* 401, 403, 404: wrong key, URL, table, function */
	DT_SB_REJECTED = 4,    /* other 4xx: the server refused this request */
	DT_SB_BADREPLY = 5     /* 2xx whose body is not the JSON expected */
};

/*
 * The most rows Supabase gives back for one request (PostgREST's
 * db-max-rows, "Max rows" in the project's API settings; RPC results
 * included): more are cut off, silently.
 */
#define DT_SB_MAX_ROWS 1000

struct dt_sb_result {
	int kind;              /* DT_SB_* */
	long status;           /* HTTP status, 0 when there was no response */
	long long total;       /* rows in the whole result, from Content-Range
	                          (asked with "Prefer: count=exact"); -1 when
	                          the server did not say */
	int tries;
	json_t *body;          /* parsed body (new reference) or NULL */
	char message[1024];    /* one line: "HTTP 404: PGRST202: ... (hint: ...)" */
};

/*
 * Creates a client from SUPABASE_URL, SUPABASE_KEY (or SUPABASE_KEY_FILE)
 * TIMEOUT_SECONDS, DT_SUPABASE_TRIES and DT_SUPABASE_BACKOFF_MS.  Returns
 * NULL after logging one line per problem, naming the variable, when the
 * configuration is missing or bad (exit with DT_EXIT_CONFIG).  Free with
 * dt_supabase_free().
 */
struct dt_supabase *dt_supabase_new(void);
void dt_supabase_free(struct dt_supabase *sb);

/*
 * Checks the settings dt_supabase_new() reads (the URL's form, the key,
 * reading SUPABASE_KEY_FILE, the numbers' ranges) without connecting to
 * anything, and logs one line per problem.  Returns the number of
 * problems, 0 when a client could be made.  For --check-config.
 */
int dt_supabase_check(void);

/*
 * Sends method to /rest/v1/<path> with body (may be NULL; not stolen)
 * as JSON and the extra header prefer (may be NULL).  retry: 1 to use
 * the shared retry policy, 0 for one attempt.  Fills *res; clear it with
 * dt_sb_result_clear().  Returns res->kind.
 */
int dt_supabase_call(struct dt_supabase *sb, const char *method,
    const char *path, json_t *body, const char *prefer, int retry,
    struct dt_sb_result *res);

/*
 * Like dt_supabase_call() with the body already JSON text: body_len
 * bytes at body (borrowed; may be NULL), for a caller that builds large
 * bodies piece by piece and should not encode them twice.
 */
int dt_supabase_call_raw(struct dt_supabase *sb, const char *method,
    const char *path, const char *body, size_t body_len, const char *prefer,
    int retry, struct dt_sb_result *res);

/* The exit status that fits a failure kind (DT_EXIT_*). */
int dt_sb_exit(int kind);


/* Frees what res owns.  Accepts NULL. */
void dt_sb_result_clear(struct dt_sb_result *res);

#endif
