/*
 * ledger.c: the run ledger (public.dt_runs), the backlog and the previous
 * run, through Supabase's data API (lib/supabase.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "ledger.h"
#include "supabase.h"

/*
 * Makes one call; returns the parsed body (a new reference, json_null()
 * when empty) or NULL after logging what the server said.
 */
static json_t *
call(struct dt_supabase *sb, const char *method, const char *path,
    const char *what, json_t *body, const char *prefer)
{
	struct dt_sb_result res;
	json_t *out = NULL;

	if (dt_supabase_call(sb, method, path, body, prefer, 1, &res) ==
	    DT_SB_OK) {
		out = res.body ? json_incref(res.body) : json_null();
	} else
		dt_warn("supabase: %s /rest/v1/%s: %s", method, what,
		    res.message);
	dt_sb_result_clear(&res);
	return out;
}

json_t *
dt_rpt_db_backlog(struct dt_supabase *sb, const char *table,
    const char *id_column)
{
	json_t *args = json_object(), *r, *o;

	json_object_set_new(args, "p_source_table", json_string(table));
	json_object_set_new(args, "p_id_column", json_string(id_column));
	r = call(sb, "POST", "rpc/dt_backlog", "rpc/dt_backlog", args, NULL);
	json_decref(args);
	if (r == NULL)
		return NULL;
	o = json_is_array(r) ? json_array_get(r, 0) : r;
	if (!json_is_object(o)) {
		dt_error("supabase: rpc/dt_backlog: expected an object");
		json_decref(r);
		return NULL;
	}
	json_incref(o);
	json_decref(r);
	return o;
}

/* The previous run: the latest finished run that is not a shard's. */
#define PREVIOUS "dt_runs?select=run_id,started_at,finished_at,status," \
	"exit_code,counts,tokens,cost_usd&finished_at=not.is.null" \
	"&run_id=not.like.*%%2F*&order=finished_at.desc&limit=1"

/*
 * GETs the rows of dt_runs the path fmt asks for, its %s the URL-encoded
 * run_id ("" when NULL).  Returns a new reference to the array, or NULL
 * after logging.
 */
static json_t *
get_runs(struct dt_supabase *sb, const char *fmt, const char *run_id)
{
	char path[1024], *esc = curl_easy_escape(NULL, run_id ? run_id : "",
	    0);
	json_t *r;

	snprintf(path, sizeof(path), fmt, esc ? esc : "");
	curl_free(esc);
	if ((r = call(sb, "GET", path, "dt_runs", NULL, NULL)) != NULL &&
	    !json_is_array(r)) {
		dt_error("supabase: GET /rest/v1/dt_runs: expected an array");
		json_decref(r);
		r = NULL;
	}
	return r;
}

int
dt_rpt_db_previous(struct dt_supabase *sb, const char *run_id, json_t **row)
{
	json_t *r = get_runs(sb, run_id ? PREVIOUS "&run_id=neq.%s" :
	    PREVIOUS "%s", run_id);

	*row = NULL;
	if (r == NULL)
		return -1;
	*row = json_array_size(r) > 0 ? json_incref(json_array_get(r, 0)) :
	    json_null();
	json_decref(r);
	return 0;
}

int
dt_rpt_db_upsert(struct dt_supabase *sb, json_t *row)
{
	json_t *r;

	r = call(sb, "POST", "dt_runs?on_conflict=run_id", "dt_runs", row,
	    "resolution=merge-duplicates,return=minimal");
	if (r == NULL)
		return -1;
	json_decref(r);
	return 0;
}

json_t *
dt_rpt_db_shards(struct dt_supabase *sb, const char *run_id)
{
	return get_runs(sb, "dt_runs?select=run_id,finished_at,summary"
	    "&finished_at=not.is.null&run_id=like.%s%%2F*", run_id);
}
