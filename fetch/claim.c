/* claim.c: dt-fetch's --claim and --peek (fetch.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "progress.h"
#include "record.h"
#include "utf8.h"

#include "fetch.h"

static volatile int stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int
dt_fetch_fail(struct dt_fetch *f, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->message, sizeof(f->message), fmt, ap);
	va_end(ap);
	utf8_fix(f->message);
	return f->status = status;
}

json_t *
dt_fetch_request_args(struct dt_fetch *f, long long want, json_t *after)
{
	int c = f->mode == 'c';
	char key[RUN_ID_MAX + 24];

	/* The server cuts texts to characters, fit_record() to bytes. */
	snprintf(key, sizeof(key), "%s:%lld", f->run_id, f->batches + 1);
	return json_pack("{ss*so*so*ss*ss*so*sIsssssssO*sI}",
	    "p_run_id", c ? f->run_id : NULL,
	    "p_lease_seconds", c ? json_integer(f->lease) : NULL,
	    "p_max_attempts", c ? json_integer(f->attempts) : NULL,
	    "p_claim_key", c ? key : NULL,
	    "p_prompt_version", f->reuse,
	    "p_after", c ? NULL : after != NULL ? json_incref(after) :
	    json_null(),
	    "p_limit", (json_int_t)want, "p_source_table", f->table,
	    "p_id_column", f->id_col, "p_text_column", f->text_col,
	    "p_columns", f->columns, "p_max_text_chars",
	    (json_int_t)f->max_text);
}

/*
 * Makes rec, the record of row, fit: its text cut to DT_FETCH_MAX_TEXT_BYTES,
 * then halved while the line is over half of DT_MAX_LINE, at last "row"
 * with only the id.  Returns 0, or -1 (out of memory, or it cannot fit).
 */
static int
fit_record(struct dt_fetch *f, json_t *rec, json_t *row, json_t *id)
{
	json_t *text = json_incref(json_object_get(rec, "text"));
	const char *s = json_string_value(text);
	size_t len = json_string_length(text), keep = (size_t)f->max_text, k;
	json_int_t total = json_integer_value(json_object_get(row,
	    "text_bytes"));
	int rc = 0;

	if (total < (json_int_t)len)
		total = (json_int_t)len;
	while (rc == 0) {
		k = s != NULL ? utf8_cut(s, len, keep) : 0;
		if (s != NULL && (k < len || total > (json_int_t)len))
			rc = json_object_update_new(rec, json_pack(
			    "{sIs{sIsI}ss%}", "text_bytes", total, "text_cut",
			    "kept_bytes", (json_int_t)k, "total_bytes", total,
			    "text", s, k));
		if (rc < 0 || json_dumpb(rec, NULL, 0, DT_LINE_FLAGS) <=
		    (size_t)f->max_line / 2)
			break;
		if (k > 0)
			keep = k / 2;
		else if (json_object_get(rec, "row_cut") != NULL)
			rc = -1;
		else
			rc = json_object_update_new(rec, json_pack("{s{sO}sb}",
			    "row", f->id_col, id, "row_cut", 1));
	}
	if (rc == 0 && json_object_get(rec, "text_cut") != NULL) {
		f->cut++;
		dt_info("row %s: text of %lld bytes cut to %zu",
		    json_string_value(json_object_get(row, "source_id")),
		    (long long)total, k);
	}
	json_decref(text);
	return rc;
}

/* With --reuse, completes rec from its row's "reused".  Returns 0 or -1. */
static int
reuse_record(struct dt_fetch *f, json_t *rec, json_t *row)
{
	json_t *r = json_object_get(row, "reused"), *analysis, *model = NULL;
	const char *from, *version, *as;

	if (json_unpack(r, "{sos?ossss}", "analysis", &analysis, "model",
	    &model, "from", &from, "prompt_version", &version) == 0 &&
	    json_is_object(analysis)) {
		f->reused++;
		return json_object_update_new(rec, json_pack(
		    "{sOsOsss{sisisisi}sis{ss}}", "analysis", analysis, "model",
		    json_is_string(model) ? model : json_null(),
		    "prompt_version", version, "usage", "prompt_tokens", 0,
		    "completion_tokens", 0, "total_tokens", 0, "cost_usd", 0,
		    "tries", 0, "reused", "from", from));
	}
	if (json_unpack(r, "{ss}", "same_text_as", &as) != 0)
		return 0;
	f->same_text++;
	return json_object_update_new(rec, json_pack("{s{ss}s{ssss+}}",
	    "same_text", "as", as, "skip", "reason", "same_text", "message",
	    "takes the analysis of the row with the same text, ", as));
}

/* Writes a reply's rows, *last the last source id (new): n, or -1 (failed). */
static long long
emit_rows(struct dt_fetch *f, json_t *rows, json_t **last)
{
	json_t *row, *data, *sid, *id, *rec;
	size_t i;
	int rc;

	if (!json_is_array(rows)) {
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "Supabase: the %s reply is "
		    "not a JSON array", f->mode == 'c' ? "dt_claim" :
		    "dt_peek");
		return -1;
	}
	json_array_foreach(rows, i, row) {
		data = json_object_get(row, "data");
		sid = json_object_get(row, "source_id");
		if (!json_is_object(data) || !json_is_string(sid)) {
			dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "Supabase: row %zu "
			    "of the reply has no source_id/data", i + 1);
			return -1;
		}
		if ((id = json_object_get(data, f->id_col)) == NULL)
			id = sid;
		/* The text is not in "row" too: it must fit the line once. */
		rec = json_pack("{sOsO?sOsssO?}", "id", id, "text",
		    json_object_get(data, f->text_col), "row", data, "run_id",
		    f->run_id, "attempt", json_object_get(row, "attempt"));
		json_object_del(data, f->text_col);
		rc = rec != NULL && fit_record(f, rec, row, id) == 0 &&
		    (f->reuse == NULL || reuse_record(f, rec, row) == 0) ?
		    dt_emit(rec) : -1;
		json_decref(rec);
		if (rc < 0) {
			dt_fetch_fail(f, dt_out_status() != 0 ?
			    dt_out_status() : DT_EXIT_IOERR,
			    "cannot write the records");
			return -1;
		}
		f->emitted++;
		json_decref(*last);
		*last = json_incref(sid);
	}
	return (long long)json_array_size(rows);
}

/* After Supabase cut a claim's rows to n: gives the others back, fails. */
static void
give_back(struct dt_fetch *f, struct dt_supabase *sb, json_t *rows,
    long long n, long long total, long long want)
{
	struct dt_sb_result res = {.message = "out of memory"};
	json_t *keep = json_array(), *row, *args;
	char back[200];
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append(keep, json_object_get(row, "source_id"));
	args = json_pack("{sssoso}", "p_run_id", f->run_id, "p_claim_key",
	    json_sprintf("%s:%lld", f->run_id, f->batches + 1), "p_keep",
	    keep);
	if (args != NULL && dt_supabase_call(sb, "POST", "rpc/dt_release",
	    args, NULL, 1, &res) == DT_SB_OK && json_is_integer(res.body))
		snprintf(back, sizeof(back), "the other %lld are given back",
		    (long long)json_integer_value(res.body));
	else
		snprintf(back, sizeof(back), "the others come back when their "
		    "lease ends (dt_release: %.120s)", res.message);
	dt_sb_result_clear(&res);
	json_decref(args);
	dt_fetch_fail(f, DT_EXIT_CONFIG, "Supabase returned %lld of the %lld "
	    "rows dt_claim leased: the project's Max rows (API settings) is "
	    "below BATCH_SIZE (%lld); set BATCH_SIZE to at most %lld; %s", n,
	    total, want, n, back);
}

/* The rows the next request asks for: a batch, or what the cap leaves. */
static long long
next_want(struct dt_fetch *f)
{
	long long left = f->max_records - f->emitted;

	return f->max_records > 0 && left < f->batch ? left : f->batch;
}

/* Claims or peeks until the cap, an empty batch, an error or a stop. */
static void
run(struct dt_fetch *f, struct dt_supabase *sb)
{
	const char *path = f->mode == 'c' ? "rpc/dt_claim" : "rpc/dt_peek";
	json_t *last = NULL, *args;
	struct dt_sb_result res;
	long long want, n;
	int kind;

	while (!stop_flag && (want = next_want(f)) > 0) {
		if (f->stop_file != NULL && access(f->stop_file, F_OK) == 0) {
			dt_info("%s exists: claiming no more", f->stop_file);
			stop_flag = 1;
			break;
		}
		if ((args = dt_fetch_request_args(f, want, last)) == NULL) {
			dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "out of memory");
			break;
		}
		/* The count shows whether the server cut the reply. */
		kind = dt_supabase_call(sb, "POST", path, args, f->mode == 'c' ?
		    "count=exact" : NULL, 1, &res);
		json_decref(args);
		if (kind != DT_SB_OK && f->reuse != NULL &&
		    strstr(res.message, "PGRST202") != NULL) {
			dt_warn("dt_claim takes no p_prompt_version (migration "
			    "20261202000000_dt_reuse.sql is not applied): "
			    "claiming without --reuse");
			f->reuse = NULL;
			dt_sb_result_clear(&res);
			continue;
		}
		/* A 400 here means a bad column or argument: config. */
		if (kind != DT_SB_OK)
			dt_fetch_fail(f, kind == DT_SB_REJECTED ?
			    DT_EXIT_CONFIG : dt_sb_exit(kind),
			    "Supabase %s: %s%s", kind == DT_SB_CONFIG ||
			    kind == DT_SB_REJECTED ?
			    "refused the request" : "unavailable", res.message,
			    res.tries > 1 ? " (after retries)" : "");
		n = kind == DT_SB_OK ? emit_rows(f, res.body, &last) : -1;
		if (n >= 0 && f->mode == 'c' && res.total > n)
			give_back(f, sb, res.body, n, res.total, want);
		dt_sb_result_clear(&res);
		if (n >= 0)
			f->batches++;
		if (f->status != DT_EXIT_OK || n == 0)
			break;
		if (f->mode == 'c')
			dt_progress_note_claimed(f->emitted, n < want);
		dt_debug("batch %lld: %lld rows", f->batches, n);
	}
	json_decref(last);
	if (f->mode == 'c')
		dt_progress_note_claimed(f->emitted, 1);
	if (f->status != DT_EXIT_OK && f->status != DT_EXIT_PIPE)
		dt_error("%s", f->message);
}

int
dt_fetch_claim(struct dt_fetch *f)
{
	struct dt_supabase *sb;
	json_t *rec;
	int rc;

	if (f->dry_run) {
		rec = json_pack("{ssssssso}", "dry_run", "dt-fetch", "method",
		    "POST", "path", f->mode == 'c' ? "/rest/v1/rpc/dt_claim" :
		    "/rest/v1/rpc/dt_peek", "body", dt_fetch_request_args(f,
		    next_want(f), NULL));
		rc = rec != NULL ? dt_emit(rec) : -1;
		json_decref(rec);
		return rc < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
	}
	dt_cli_catch_signals(on_signal, 0);
	dt_http_set_stop_flag(&stop_flag);
	if ((sb = dt_supabase_new()) == NULL)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "bad Supabase configuration "
		    "(see the log)");
	else
		run(f, sb);
	dt_supabase_free(sb);
	if (stop_flag && f->status == DT_EXIT_OK) {
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "interrupted after %lld "
		    "rows", f->emitted);
		dt_warn("%s", f->message);
	}
	rec = dt_record_stage("dt-fetch", f->run_id, f->status, f->message,
	    json_pack("{sIsIsIso*so*}", f->mode == 'c' ? "claimed" : "peeked",
	    (json_int_t)f->emitted, "batches", (json_int_t)f->batches,
	    "text_cut", (json_int_t)f->cut, "reused", f->reuse != NULL ?
	    json_integer(f->reused) : NULL, "same_text", f->reuse != NULL ?
	    json_integer(f->same_text) : NULL), NULL, stop_flag);
	if (rec != NULL && f->status != DT_EXIT_PIPE)
		dt_emit(rec);
	json_decref(rec);
	dt_info("run %s: %s %lld rows in %lld batches", f->run_id,
	    f->mode == 'c' ? "claimed" : "peeked", f->emitted, f->batches);
	return f->status;
}
