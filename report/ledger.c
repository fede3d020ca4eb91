/*
 * ledger.c: the run ledger (public.dt_runs), the backlog and the previous
 * run, through Supabase's data API (lib/supabase.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "ledger.h"
#include "log.h"
#include "supabase.h"
#include "tally.h"

/* The previous run: the latest finished run that is not a shard's. */
#define PREVIOUS "dt_runs?select=run_id,started_at,finished_at,status," \
	"exit_code,counts,tokens,cost_usd&finished_at=not.is.null" \
	"&run_id=not.like.*%%2F*&order=finished_at.desc&limit=1"

/*
 * Makes one call to /rest/v1/<path>.  Returns the parsed body (new;
 * json_null() when empty), or NULL after a warning quoting the server.
 */
static json_t *
call(struct dt_supabase *sb, const char *method, const char *path,
    json_t *body, const char *prefer)
{
	struct dt_sb_result res;
	json_t *out = NULL;

	if (dt_supabase_call(sb, method, path, body, prefer, 1, &res) ==
	    DT_SB_OK)
		out = res.body != NULL ? json_incref(res.body) : json_null();
	else
		dt_warn("supabase: %s /rest/v1/%.*s: %s", method,
		    (int)strcspn(path, "?"), path, res.message);
	dt_sb_result_clear(&res);
	return out;
}

/*
 * GETs the rows of dt_runs the path fmt asks for, its %s the URL-encoded
 * run_id ("" when NULL).  Returns PostgREST's array (new), or NULL after
 * logging.
 */
static json_t *
get_runs(struct dt_supabase *sb, const char *fmt, const char *run_id)
{
	char path[1024], *esc = curl_easy_escape(NULL, run_id ? run_id : "",
	    0);

	snprintf(path, sizeof(path), fmt, esc ? esc : "");
	curl_free(esc);
	return call(sb, "GET", path, NULL, NULL);
}

static json_int_t
int_at(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

void
dt_rpt_db_read(struct dt_supabase *sb, const char *table,
    const char *id_column, json_t *s)
{
	const char *run_id = json_string_value(json_object_get(s, "run_id"));
	json_t *args = json_pack("{ssss}", "p_source_table", table,
	    "p_id_column", id_column), *r, *prev, *delta, *cost;

	r = call(sb, "POST", "rpc/dt_backlog", args, NULL);
	json_decref(args);
	prev = json_is_array(r) ? json_array_get(r, 0) : r;
	if (json_is_object(prev))
		json_object_set(s, "backlog", prev);
	else if (r != NULL)
		dt_error("supabase: rpc/dt_backlog: expected an object");
	json_decref(r);

	r = get_runs(sb, run_id ? PREVIOUS "&run_id=neq.%s" : PREVIOUS "%s",
	    run_id);
	if ((prev = json_array_get(r, 0)) != NULL) {
		delta = json_pack("{sIsIsI}", "records", int_at(s, "records") -
		    int_at(json_object_get(prev, "counts"), "records"),
		    "failed", int_at(s, "failed") - int_at(json_object_get(
		    prev, "counts"), "failed"), "tokens", int_at(
		    json_object_get(s, "tokens"), "total") - (json_int_t)
		    json_number_value(json_object_get(prev, "tokens")));
		if (json_is_number(cost = json_object_get(s, "cost_usd")))
			json_object_set_new(delta, "cost_usd", json_real(
			    json_number_value(cost) - json_number_value(
			    json_object_get(prev, "cost_usd"))));
		json_object_set_new(s, "previous", json_pack("{sO?sO?so}",
		    "run_id", json_object_get(prev, "run_id"), "finished_at",
		    json_object_get(prev, "finished_at"), "delta", delta));
	}
	json_decref(r);
}

int
dt_rpt_db_upsert(struct dt_supabase *sb, json_t *s, const char *run_id)
{
	json_t *row = json_pack("{sssOsOsOsOs{sOsOsOsOsO}sOsOsO}", "run_id",
	    run_id, "started_at", json_object_get(s, "started_at"),
	    "finished_at", json_object_get(s, "finished_at"), "status",
	    json_object_get(s, "state"), "exit_code", json_object_get(s,
	    "exit_code"), "counts", "records", json_object_get(s, "records"),
	    "failed", json_object_get(s, "failed"), "bad_lines",
	    json_object_get(s, "bad_lines"), "by_status", json_object_get(s,
	    "by_status"), "by_error", json_object_get(s, "by_error"),
	    "tokens", json_object_get(json_object_get(s, "tokens"), "total"),
	    "cost_usd", json_object_get(s, "cost_usd"), "summary", s), *r;
	int rc;

	r = row ? call(sb, "POST", "dt_runs?on_conflict=run_id", row,
	    "resolution=merge-duplicates,return=minimal") : NULL;
	rc = r != NULL ? 0 : -1;
	json_decref(row);
	json_decref(r);
	return rc;
}

/*
 * Merges into t the finished shard rows not merged yet (done[k]: 1
 * merged, 2 not mergeable).  Returns how many it took.
 */
static int
take_shards(struct dt_supabase *sb, const char *run_id, long long n,
    struct dt_rpt_tally *t, char *done)
{
	json_t *arr = get_runs(sb, "dt_runs?select=run_id,finished_at,summary"
	    "&finished_at=not.is.null&run_id=like.%s%%2F*", run_id), *row;
	size_t i, len = strlen(run_id);
	const char *id;
	char *end;
	long long k;
	int found = 0;

	json_array_foreach(arr, i, row) {
		id = json_string_value(json_object_get(row, "run_id"));
		if (id == NULL || strncmp(id, run_id, len) != 0 ||
		    id[len] != '/' || !isdigit((unsigned char)id[len + 1]))
			continue;
		k = strtoll(id + len + 1, &end, 10);
		if (*end != '\0' || k >= n || done[k])
			continue;
		done[k] = dt_rpt_tally_merge(t, json_object_get(row,
		    "summary")) == 0 ? 1 : 2;
		found++;
	}
	json_decref(arr);
	return found;
}

json_t *
dt_rpt_db_merge_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, struct dt_rpt_tally *t)
{
	long long now = dt_now_ms(), end = now + wait_ms, delay = 250, k;
	json_t *merged = json_array(), *missing = json_array();
	struct dt_buf b = {0};
	char done[1000] = {0};
	int found = 0, stopped = 0, said = 0;

	while ((found += take_shards(sb, run_id, n, t, done)) < n) {
		now = dt_now_ms();
		if (!stopped && stop_file != NULL &&
		    access(stop_file, F_OK) == 0) {
			stopped = 1;
			if (end > now + drain_s * 1000)
				end = now + drain_s * 1000;
			dt_info("stopping: waiting at most %lld s more for the "
			    "shards", drain_s);
		}
		if (now >= end)
			break;
		if (!said++)
			dt_info("%d of %lld shards finished; waiting up to "
			    "%.0f s for the others", found, n,
			    (double)(end - now) / 1000);
		dt_sleep_ms((long)(delay < end - now ? delay : end - now));
		if ((delay *= 2) > 5000)
			delay = 5000;
	}
	for (k = 0; k < n; k++) {
		json_array_append_new(done[k] == 1 ? merged : missing,
		    json_integer(k));
		if (done[k] != 1)
			dt_buf_printf(&b, "%s%lld", b.len > 0 ? ", " : "", k);
	}
	if (b.len > 0)
		dt_warn("run %s: no finished ledger row from shard%s %s; the "
		    "report is partial", run_id, json_array_size(missing) > 1 ?
		    "s" : "", b.p);
	dt_buf_free(&b);
	return json_pack("{sIsoso}", "of", (json_int_t)n, "merged", merged,
	    "missing", missing);
}
