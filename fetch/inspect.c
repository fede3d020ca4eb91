/*
 * inspect.c: dt-fetch's calls to Supabase other than claiming: --requeue,
 * --preflight and --backlog (see fetch.h).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "cli.h"

#include "fetch.h"

/* The rows --backlog samples, and the analyses it averages. */
#define SAMPLE_ROWS 200
#define HISTORY_ROWS "200"

/*
 * The other functions the stages call, with arguments that give them
 * nothing to do: a database without them, or with an older signature,
 * answers PGRST202.  dt_peek stands for dt_claim.
 */
static const struct {
	const char *path;
	const char *args;
} probes[] = {
	{"rpc/dt_settle", "{\"p_run_id\":\"dt-preflight\",\"p_results\":[]}"},
	{"rpc/dt_reclaim", "{\"p_run_id\":\"dt-preflight\",\"p_results\":[]}"},
	{"rpc/dt_release", "{\"p_run_id\":\"dt-preflight\",\"p_claim_key\":"
	    "\"dt-preflight:0\",\"p_keep\":[]}"},
	{"rpc/dt_requeue", "{\"p_dry_run\":true}"},
};

/*
 * Fails the run saying what a failed call to fn means for the operator,
 * naming what to fix: 69 when Supabase could not answer, else 78.
 */
static void
explain(struct dt_fetch *f, const char *fn, const struct dt_sb_result *res)
{
	const char *code = json_string_value(json_object_get(res->body,
	    "code"));
	const char *m = res->message;

	if (code == NULL)
		code = "";
	/* 5xx, 429: e.g. a statement timeout (57014) on a big table. */
	if ((res->kind == DT_SB_UNAVAILABLE || res->kind == DT_SB_TIMEOUT) &&
	    res->status == 0)
		dt_fetch_fail(f, DT_EXIT_UNAVAILABLE, "SUPABASE_URL: Supabase "
		    "cannot be reached (%s)", m);
	else if (res->kind == DT_SB_UNAVAILABLE || res->kind == DT_SB_TIMEOUT)
		dt_fetch_fail(f, DT_EXIT_UNAVAILABLE, "Supabase could not "
		    "answer %s (%s); try again later", fn, m);
	else if (strcmp(code, "PGRST202") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "migrations not applied: %s "
		    "is missing or older than this dt (%s); apply "
		    "supabase/migrations (supabase db push)", fn, m);
	else if (strcmp(code, "42501") == 0)
		/* lib/supabase.c names the key after a 401. */
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_KEY: %sits role may "
		    "not call %s (%s)", strstr(m, "not a secret") != NULL ? "" :
		    "not a secret (service) key: ", fn, m);
	else if (res->status == 401 || res->status == 403)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_KEY: refused (%s)",
		    m);
	else if (strcmp(code, "42P01") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "DT_SOURCE_TABLE: no table or "
		    "view %s (%s)", f->table, m);
	else if (strcmp(code, "42703") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "DT_SOURCE_ID, DT_SOURCE_TEXT "
		    "or DT_SOURCE_COLUMNS: %s", m);
	else if (res->status == 404)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_URL: not a Supabase "
		    "project's URL (%s)", m);
	else
		dt_fetch_fail(f, DT_EXIT_CONFIG, "Supabase refused %s (%s)", fn,
		    m);
}

/*
 * POSTs args (stolen; NULL when out of memory) to path, "rpc/<function>",
 * unless the run has failed, and checks that the answer is of type (or
 * any, -1).  Returns a new reference to it, or NULL after failing.
 */
static json_t *
call(struct dt_fetch *f, struct dt_supabase *sb, const char *path,
    json_t *args, int type)
{
	const char *fn = path + 4;
	struct dt_sb_result res;
	json_t *body = NULL;

	if (args == NULL && f->status == DT_EXIT_OK)
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "out of memory");
	if (f->status != DT_EXIT_OK) {
		json_decref(args);
		return NULL;
	}
	if (dt_supabase_call(sb, "POST", path, args, NULL, 1, &res) !=
	    DT_SB_OK)
		explain(f, fn, &res);
	else if (type >= 0 && (res.body == NULL ||
	    (int)json_typeof(res.body) != type))
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "%s's answer is not a "
		    "JSON %s", fn, type == JSON_OBJECT ? "object" : "array");
	else
		body = json_incref(res.body);
	json_decref(args);
	dt_sb_result_clear(&res);
	return body;
}

/*
 * The checks of --preflight and --backlog: dt_backlog (only the service
 * role may call it), dt_peek with this run's settings, and the probes.
 * Stores new references to the backlog and the peeked rows (NULL when
 * not read).  Returns 0, or the status of the failed run.
 */
static int
inspect(struct dt_fetch *f, struct dt_supabase *sb, json_t **backlog,
    json_t **rows)
{
	json_t *args;
	size_t i;

	*backlog = call(f, sb, "rpc/dt_backlog", json_pack("{ssss}",
	    "p_source_table", f->table, "p_id_column", f->id_col),
	    JSON_OBJECT);
	/* The sizes come from text_bytes: the texts may be cut. */
	if ((args = dt_fetch_request_args(f, SAMPLE_ROWS, NULL)) != NULL)
		json_object_set_new(args, "p_max_text_chars", json_integer(64));
	*rows = call(f, sb, "rpc/dt_peek", args, JSON_ARRAY);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		json_decref(call(f, sb, probes[i].path,
		    json_loads(probes[i].args, 0, NULL), -1));
	return f->status;
}

/* A count from dt_backlog's answer (0 when absent). */
static long long
count(json_t *backlog, const char *key)
{
	return (long long)json_integer_value(json_object_get(backlog, key));
}

int
dt_fetch_preflight(struct dt_fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	json_t *bl, *rows;
	char skipped[48] = "";
	int rc;

	if (sb == NULL)
		return dt_preflight_line("supabase", DT_EXIT_CONFIG,
		    "SUPABASE_URL or SUPABASE_KEY: not valid (the lines above "
		    "say why)");
	if (inspect(f, sb, &bl, &rows) != DT_EXIT_OK)
		rc = dt_preflight_line("supabase", f->status, "%s", f->message);
	else {
		/* A database that counts skipped rows (no text) says so. */
		if (json_object_get(bl, "skipped") != NULL)
			snprintf(skipped, sizeof(skipped), ", %lld skipped",
			    count(bl, "skipped"));
		rc = dt_preflight_line("supabase", DT_EXIT_OK, "migrations "
		    "applied, secret (service) key, source %s readable; "
		    "backlog: %lld unclaimed, %lld leased, %lld parked (%lld "
		    "done%s)", f->table, count(bl, "unclaimed"), count(bl,
		    "leased"), count(bl, "failed"), count(bl, "done"), skipped);
	}
	json_decref(bl);
	json_decref(rows);
	dt_supabase_free(sb);
	return rc;
}

/*
 * The averages of the last analyses stored (at most HISTORY_ROWS), for
 * an estimate from what the API really counted: a new reference to
 * {"rows", "prompt_tokens", "completion_tokens", "cost_usd"}, or NULL
 * when there are none or they cannot be read (an estimate does without).
 */
static json_t *
history(struct dt_supabase *sb)
{
	struct dt_sb_result res;
	double in = 0, out = 0, cost = 0;
	long long ncost = 0;
	json_t *row, *o = NULL;
	size_t i, n;

	if (dt_supabase_call(sb, "GET", "dt_results?select=prompt_tokens,"
	    "completion_tokens,cost_usd&status=eq.done&prompt_tokens=not.is."
	    "null&completion_tokens=not.is.null&order=done_at.desc.nullslast"
	    "&limit=" HISTORY_ROWS, NULL, NULL, 1, &res) != DT_SB_OK ||
	    !json_is_array(res.body))
		dt_debug("no history of analyses: %s", res.message);
	n = json_array_size(res.body);
	json_array_foreach(res.body, i, row) {
		json_t *u = json_object_get(row, "cost_usd");

		in += (double)json_integer_value(json_object_get(row,
		    "prompt_tokens"));
		out += (double)json_integer_value(json_object_get(row,
		    "completion_tokens"));
		if (json_is_number(u)) {
			cost += json_number_value(u);
			ncost++;
		}
	}
	if (n > 0)
		o = json_pack("{sIsfsfsf}", "rows", (json_int_t)n,
		    "prompt_tokens", in / (double)n, "completion_tokens",
		    out / (double)n, "cost_usd", ncost > 0 ?
		    cost / (double)ncost : 0.0);
	dt_sb_result_clear(&res);
	return o;
}

int
dt_fetch_backlog(struct dt_fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	json_t *bl, *rows, *row, *out = NULL, *hist;
	long long nblank = 0, bytes = 0;
	size_t i;
	int rc;

	if (sb == NULL)
		return DT_EXIT_CONFIG;
	if ((rc = inspect(f, sb, &bl, &rows)) != DT_EXIT_OK)
		dt_error("%s", f->message);
	/* The bytes of the texts as a run would send them; blank ones. */
	json_array_foreach(rows, i, row) {
		long long n = json_integer_value(json_object_get(row,
		    "text_bytes"));
		const char *s = json_string_value(json_object_get(
		    json_object_get(row, "data"), f->text_col));

		if (s == NULL || s[strspn(s, " \t\r\n\f\v")] == '\0')
			nblank++;
		else
			bytes += n < f->max_text ? n : f->max_text;
	}
	if (rc == DT_EXIT_OK)
		out = json_pack("{sOs{sIsIsI}sIsIsI}", "backlog", bl, "sample",
		    "rows", (json_int_t)json_array_size(rows), "blank",
		    (json_int_t)nblank, "text_bytes", (json_int_t)bytes,
		    "max_records", (json_int_t)f->max_records, "batch_size",
		    (json_int_t)f->batch, "max_text_bytes",
		    (json_int_t)f->max_text);
	if (out != NULL && (hist = history(sb)) != NULL)
		json_object_set_new(out, "history", hist);
	if (rc == DT_EXIT_OK && (out == NULL || dt_emit(out) < 0))
		rc = DT_EXIT_IOERR;
	json_decref(out);
	json_decref(bl);
	json_decref(rows);
	dt_supabase_free(sb);
	return rc;
}

int
dt_fetch_requeue(struct dt_fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	json_t *res, *by, *v;
	const char *k, *sep = ": ";
	json_int_t n;

	if (sb == NULL)
		return DT_EXIT_CONFIG;
	res = call(f, sb, "rpc/dt_requeue", json_pack("{ss?sb}", "p_kind",
	    f->kind, "p_dry_run", f->dry_run), JSON_OBJECT);
	dt_supabase_free(sb);
	n = json_integer_value(json_object_get(res, "rows"));
	by = json_object_get(res, "by_kind");
	if (f->status == DT_EXIT_OK && (!json_is_integer(json_object_get(res,
	    "rows")) || !json_is_object(by)))
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "the dt_requeue reply is "
		    "not {\"rows\",\"by_kind\"}");
	if (f->status != DT_EXIT_OK) {
		dt_error("%s", f->message);
		json_decref(res);
		return f->status;
	}
	printf("%s %" JSON_INTEGER_FORMAT " parked row%s%s%s", f->dry_run ?
	    "would requeue" : "requeued", n, n == 1 ? "" : "s", f->kind !=
	    NULL ? " of kind " : "", f->kind != NULL ? f->kind : "");
	/* Without a kind, how many of each. */
	json_object_foreach(f->kind == NULL ? by : NULL, k, v) {
		printf("%s%s %" JSON_INTEGER_FORMAT, sep, k,
		    json_integer_value(v));
		sep = ", ";
	}
	json_decref(res);
	return printf("\n") < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
}
