/*
 * supabase.h: calls to Supabase's data API (PostgREST under /rest/v1).
 * The key travels in the apikey and Authorization headers only.
 */
#ifndef DT_SUPABASE_H
#define DT_SUPABASE_H

#include <stddef.h>

#include <jansson.h>

struct dt_supabase;

/* What a call's result means for the caller. */
enum {
	DT_SB_OK = 0,          /* 2xx */
	DT_SB_UNAVAILABLE = 1, /* connection failed, 5xx or 429 after retries */
	DT_SB_TIMEOUT = 2,     /* timed out after retries */
	DT_SB_CONFIG = 3,      /* 3xx, 401-404: wrong key, URL, table, function */
	DT_SB_REJECTED = 4,    /* other 4xx: the server refused this request */
	DT_SB_BADREPLY = 5     /* 2xx whose body is not the JSON expected */
};

/* Rows Supabase gives back at most (db-max-rows); more are cut off. */
#define DT_SB_MAX_ROWS 1000

struct dt_sb_result {
	int kind;              /* DT_SB_* */
	long status;           /* HTTP status, 0 when there was no response */
	long long total;       /* rows in the whole result, from Content-Range
	                          ("Prefer: count=exact"); -1 when unknown */
	int tries;
	json_t *body;          /* parsed body (new reference) or NULL */
	char message[1024];    /* one line: "HTTP 404: PGRST202: ... (hint: ...)" */
};

/*
 * Returns a client from SUPABASE_URL, SUPABASE_KEY[_FILE], TIMEOUT_SECONDS,
 * DT_SUPABASE_TRIES and DT_SUPABASE_BACKOFF_MS, or NULL after one line
 * per problem (exit DT_EXIT_CONFIG).  dt_supabase_free() accepts NULL.
 */
struct dt_supabase *dt_supabase_new(void);
void dt_supabase_free(struct dt_supabase *sb);

/* Checks dt_supabase_new()'s settings; returns the problems (logged). */
int dt_supabase_check(void);

/*
 * Sends method to /rest/v1/<path> with body (borrowed, or NULL) and
 * "Prefer: <prefer>" (or none), retried when retry is 1.  Fills *res
 * (clear it with dt_sb_result_clear()) and returns res->kind.
 */
int dt_supabase_call(struct dt_supabase *sb, const char *method,
    const char *path, json_t *body, const char *prefer, int retry,
    struct dt_sb_result *res);

/* Like dt_supabase_call() with a body already JSON text (borrowed). */
int dt_supabase_call_raw(struct dt_supabase *sb, const char *method,
    const char *path, const char *body, size_t body_len, const char *prefer,
    int retry, struct dt_sb_result *res);

/* The exit status (DT_EXIT_*) that fits a result's kind. */
int dt_sb_exit(int kind);

/* Frees what res owns.  Accepts NULL. */
void dt_sb_result_clear(struct dt_sb_result *res);

#endif
