/*
 * claim.c: dt-fetch's --claim and --peek: batch after batch of rows
 * through dt_claim or dt_peek, each row written as a source record cut
 * to the line limit, then the stage record (see fetch.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
#include "reuse.h"

static volatile int stop_flag;

/*
 * The stop file asks for what SIGTERM asks for.  It exists because in a
 * Kubernetes pod only PID 1 (entrypoint.sh) gets the signal, and the
 * fan-out between it and dt-fetch must not be signalled.
 */
static int
stop_requested(const struct dt_fetch *f)
{
	if (!stop_flag && f->stop_file != NULL &&
	    access(f->stop_file, F_OK) == 0) {
		dt_info("%s exists: claiming no more", f->stop_file);
		stop_flag = 1;
	}
	return stop_flag;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

void
dt_fetch_catch_signals(void)
{
	dt_cli_catch_signals(on_signal, 0);
	dt_http_set_stop_flag(&stop_flag);
}

json_t *
dt_fetch_request_args(struct dt_fetch *f, long long want, const char *after)
{
	json_t *a = json_object();
	char key[RUN_ID_MAX + 32];

	if (a == NULL)
		return NULL;
	if (f->mode == 'c') {
		snprintf(key, sizeof(key), "%s:%lld", f->run_id, f->batches + 1);
		json_object_set_new(a, "p_run_id", json_string(f->run_id));
		json_object_set_new(a, "p_lease_seconds", json_integer(f->lease));
		json_object_set_new(a, "p_max_attempts",
		    json_integer(f->attempts));
		json_object_set_new(a, "p_claim_key", json_string(key));
		if (f->reuse != NULL)
			json_object_set_new(a, "p_prompt_version",
			    json_string(f->reuse));
	} else
		json_object_set_new(a, "p_after",
		    after != NULL ? json_string(after) : json_null());
	json_object_set_new(a, "p_limit", json_integer(want));
	json_object_set_new(a, "p_source_table", json_string(f->table));
	json_object_set_new(a, "p_id_column", json_string(f->id_col));
	json_object_set_new(a, "p_text_column", json_string(f->text_col));
	if (f->columns != NULL)
		json_object_set(a, "p_columns", f->columns);
	/*
	 * The server cuts the text to that many characters (at most four
	 * bytes each), so a huge message never crosses the wire; the cut
	 * to bytes is ours.
	 */
	json_object_set_new(a, "p_max_text_chars",
	    json_integer(f->max_text));
	return a;
}

/*
 * The longest line dt-fetch writes: half of DT_MAX_LINE, so that the
 * stages after it, which add the analysis to the record, stay within
 * the limit too.
 */
static size_t
line_limit(const struct dt_fetch *f)
{
	return (size_t)(f->max_line > 0 ? f->max_line : DEFAULT_MAX_LINE) / 2;
}

/* The longest text dt-fetch writes, in bytes. */
static size_t
text_limit(const struct dt_fetch *f)
{
	return (size_t)(f->max_text > 0 ? f->max_text : DEFAULT_MAX_TEXT);
}

/*
 * Cuts rec's "text" (a new reference, stolen; NULL for none) to keep
 * bytes on a character boundary when it is longer, and marks the record
 * with "text_bytes" (the whole text's size, total: from the server when
 * it cut first) and "text_cut": {"kept_bytes","total_bytes"}.  Returns
 * the text to use (a new reference) or NULL when out of memory.
 */
static json_t *
cut_text(json_t *rec, json_t *text, size_t keep,
    json_int_t total)
{
	const char *s = json_string_value(text);
	size_t len = json_string_length(text), k;
	json_t *cut;

	if (s == NULL || (len <= keep && (json_int_t)len >= total))
		return text;
	k = utf8_cut(s, len, keep);
	if ((json_int_t)len > total)
		total = (json_int_t)len;
	cut = json_stringn(s, k);
	json_decref(text);
	if (cut == NULL || json_object_set_new(rec, "text_bytes",
	    json_integer(total)) < 0 || json_object_set_new(rec, "text_cut",
	    json_pack("{sIsI}", "kept_bytes", (json_int_t)k, "total_bytes",
	    total)) < 0 || json_object_set(rec, "text", cut) < 0) {
		json_decref(cut);
		return NULL;
	}
	return cut;
}

/*
 * Makes rec's line fit line_limit(): cuts the text further, and as a
 * last resort keeps only the id in "row" ("row_cut": true).  The common
 * case, a short text and no extra columns, is not measured.  Returns 0,
 * or -1 when out of memory or nothing makes it fit.
 */
static int
fit_line(struct dt_fetch *f, json_t *rec, json_t *id)
{
	json_t *text = json_object_get(rec, "text");
	json_int_t total = json_integer_value(json_object_get(rec,
	    "text_bytes"));
	size_t limit = line_limit(f), len, keep;

	len = json_is_string(text) ? json_string_length(text) : 0;
	/* A byte of text takes at most six in JSON (\u0001). */
	if (f->columns == NULL && len * 6 + 4096 < limit)
		return 0;
	if (total == 0)
		total = (json_int_t)len;
	keep = len;
	while (json_dumpb(rec, NULL, 0, DT_LINE_FLAGS) > limit) {
		if (keep == 0) {
			if (json_object_get(rec, "row_cut") != NULL)
				return -1;
			json_object_set_new(rec, "row", json_pack("{sO}",
			    f->id_col, id));
			json_object_set_new(rec, "row_cut", json_true());
			continue;
		}
		keep /= 2;
		json_incref(text);
		if ((text = cut_text(rec, text, keep, total)) == NULL)
			return -1;
		json_decref(text);
	}
	return 0;
}

/*
 * No line may be longer than the stages after us read: a long text is
 * cut (the server cut it to characters already and says in the row's
 * text_bytes how long it was), and the record says so; dt-analyze's own
 * limit applies to the rest.  Makes rec, built from row, fit (cut_text,
 * fit_line), stealing text, its text, and counts a cut text.  Returns 0,
 * or -1 when out of memory or nothing makes it fit.
 */
static int
fit_record(struct dt_fetch *f, json_t *rec, json_t *text, json_t *row,
    json_t *id)
{
	json_t *tb = json_object_get(row, "text_bytes");
	int rc;

	text = cut_text(rec, text, text_limit(f),
	    json_is_integer(tb) ? json_integer_value(tb) : 0);
	rc = text == NULL || fit_line(f, rec, id) < 0 ? -1 : 0;
	json_decref(text);
	if (rc == 0 && json_object_get(rec, "text_cut") != NULL) {
		f->cut++;
		dt_info("row %s: text of %lld bytes cut to %lld",
		    json_string_value(json_object_get(row, "source_id")),
		    (long long)json_integer_value(json_object_get(rec,
		    "text_bytes")), (long long)json_string_length(
		    json_object_get(rec, "text")));
	}
	return rc;
}

/*
 * With --reuse: a text analysed before gives rec, built from row, its
 * analysis; one being analysed, the row whose analysis it takes
 * (reuse.h).  Counts them.  Returns 0, or -1 when out of memory.
 */
static int
reuse_record(struct dt_fetch *f, json_t *rec, json_t *row)
{
	int r = dt_fetch_reuse_record(rec, row);

	if (r == DT_FETCH_REUSED)
		f->reused++;
	else if (r == DT_FETCH_SAME_TEXT)
		f->same_text++;
	return r < 0 ? -1 : 0;
}

/*
 * Writes the rows of one reply as source records.  Stores a copy of the
 * last source id in *last (for --peek's paging; freed by the caller).
 * Returns the number of rows, or -1 when the reply is not what dt_claim
 * returns or stdout failed.
 */
static long long
emit_rows(struct dt_fetch *f, json_t *rows, char **last)
{
	size_t i;
	json_t *row;

	if (!json_is_array(rows)) {
		snprintf(f->message, sizeof(f->message),
		    "Supabase: the %s reply is not a JSON array",
		    f->mode == 'c' ? "dt_claim" : "dt_peek");
		f->status = DT_EXIT_TEMPFAIL;
		return -1;
	}
	json_array_foreach(rows, i, row) {
		json_t *data = json_object_get(row, "data");
		json_t *sid = json_object_get(row, "source_id");
		json_t *id, *rec, *text;
		int rc;

		if (!json_is_object(data) || !json_is_string(sid)) {
			snprintf(f->message, sizeof(f->message),
			    "Supabase: row %zu of the reply has no "
			    "source_id/data", i + 1);
			f->status = DT_EXIT_TEMPFAIL;
			return -1;
		}
		if ((id = json_object_get(data, f->id_col)) == NULL)
			id = sid;
		/*
		 * The text goes in "text" only, not again in "row": a long
		 * message must fit the line limit once, not twice.
		 */
		if ((text = json_object_get(data, f->text_col)) == NULL)
			text = json_null();
		json_incref(text);
		json_object_del(data, f->text_col);
		rec = json_pack("{sOsOsOsssO}", "id", id, "text", text,
		    "row", data, "run_id", f->run_id, "attempt",
		    json_object_get(row, "attempt") != NULL ?
		    json_object_get(row, "attempt") : json_null());
		if (rec == NULL)
			json_decref(text);
		else if (fit_record(f, rec, text, row, id) < 0 ||
		    (f->reuse != NULL && reuse_record(f, rec, row) < 0)) {
			json_decref(rec);
			rec = NULL;
		}
		rc = rec != NULL ? dt_emit(rec) : -1;
		json_decref(rec);
		if (rc < 0) {
			f->status = dt_out_status() != 0 ? dt_out_status() :
			    DT_EXIT_IOERR;
			snprintf(f->message, sizeof(f->message),
			    "cannot write the records");
			return -1;
		}
		f->emitted++;
		free(*last);
		if ((*last = strdup(json_string_value(sid))) == NULL) {
			f->status = DT_EXIT_TEMPFAIL;
			snprintf(f->message, sizeof(f->message), "out of memory");
			return -1;
		}
	}
	return (long long)json_array_size(rows);
}

/*
 * After Supabase cut a dt_claim reply (rows, the array received, holds n
 * of the total leased): gives the leases of that claim that did not
 * arrive back through dt_release, and sets f->status and f->message.
 */
static void
give_back(struct dt_fetch *f, struct dt_supabase *sb, json_t *rows,
    long long n, long long total, long long want)
{
	struct dt_sb_result res;
	char key[RUN_ID_MAX + 32], back[200];
	json_t *args, *keep = json_array(), *row;
	size_t i;

	snprintf(key, sizeof(key), "%s:%lld", f->run_id, f->batches + 1);
	json_array_foreach(rows, i, row)
		json_array_append(keep, json_object_get(row, "source_id"));
	args = json_pack("{sssssO}", "p_run_id", f->run_id, "p_claim_key",
	    key, "p_keep", keep);
	if (args != NULL && dt_supabase_call(sb, "POST", "rpc/dt_release",
	    args, NULL, 1, &res) == DT_SB_OK && json_is_integer(res.body))
		snprintf(back, sizeof(back), "the other %lld are given back",
		    (long long)json_integer_value(res.body));
	else
		snprintf(back, sizeof(back), "the others come back when "
		    "their lease ends (dt_release: %.120s)", args == NULL ?
		    "out of memory" : res.message);
	if (args != NULL)
		dt_sb_result_clear(&res);
	json_decref(args);
	json_decref(keep);
	f->status = DT_EXIT_CONFIG;
	snprintf(f->message, sizeof(f->message), "Supabase returned %lld of "
	    "the %lld rows dt_claim leased: the project's Max rows (API "
	    "settings) is below BATCH_SIZE (%lld); set BATCH_SIZE to at most "
	    "%lld; %s", n, total, want, n, back);
	dt_error("%s", f->message);
}

/*
 * A database whose dt_claim has no p_prompt_version (its migration not
 * applied yet) answers a claim with --reuse with PGRST202: claiming goes
 * on without reuse.  Returns 1 when res is that answer.
 */
static int
reuse_unknown(struct dt_fetch *f, const struct dt_sb_result *res)
{
	if (f->reuse == NULL || strstr(res->message, "PGRST202") == NULL)
		return 0;
	dt_warn("dt_claim takes no p_prompt_version (migration "
	    "20261202000000_dt_reuse.sql is not applied): claiming without "
	    "--reuse");
	f->reuse = NULL;
	return 1;
}

void
dt_fetch_run(struct dt_fetch *f, struct dt_supabase *sb)
{
	const char *path = f->mode == 'c' ? "rpc/dt_claim" : "rpc/dt_peek";
	char *last = NULL;

	while (!stop_requested(f)) {
		struct dt_sb_result res;
		long long want = f->batch, n;
		json_t *args;

		if (f->max_records > 0) {
			if (f->emitted >= f->max_records)
				break;
			if (f->max_records - f->emitted < want)
				want = f->max_records - f->emitted;
		}
		args = dt_fetch_request_args(f, want, last);
		if (args == NULL) {
			f->status = DT_EXIT_TEMPFAIL;
			snprintf(f->message, sizeof(f->message), "out of memory");
			break;
		}
		/* The count shows whether the server cut the reply. */
		if (dt_supabase_call(sb, "POST", path, args, f->mode == 'c' ?
		    "count=exact" : NULL, 1, &res) != DT_SB_OK) {
			if (reuse_unknown(f, &res)) {
				json_decref(args);
				dt_sb_result_clear(&res);
				continue;
			}
			/* A 400 here means a bad column or argument: config. */
			f->status = res.kind == DT_SB_REJECTED ? DT_EXIT_CONFIG :
			    dt_sb_exit(res.kind);
			snprintf(f->message, sizeof(f->message), "Supabase %s: %s%s",
			    res.kind == DT_SB_CONFIG || res.kind == DT_SB_REJECTED ?
			    "refused the request" : "unavailable", res.message,
			    res.tries > 1 ? " (after retries)" : "");
			dt_error("%s", f->message);
			json_decref(args);
			dt_sb_result_clear(&res);
			break;
		}
		json_decref(args);
		n = emit_rows(f, res.body, &last);
		if (n >= 0 && f->mode == 'c' && res.total > n) {
			/*
			 * The project caps replies below BATCH_SIZE: the rows
			 * written are good; the rest were leased and never
			 * arrived.  Give them back, and claim no more.
			 */
			give_back(f, sb, res.body, n, res.total, want);
			dt_sb_result_clear(&res);
			f->batches++;
			break;
		}
		dt_sb_result_clear(&res);
		if (n < 0) {
			if (f->status != DT_EXIT_PIPE)
				dt_error("%s", f->message);
			break;
		}
		f->batches++;
		if (f->mode == 'c')
			dt_progress_note_claimed(f->emitted, n < want);
		dt_debug("batch %lld: %lld rows", f->batches, n);
		if (n == 0)
			break;
	}
	free(last);
	/* However claiming ended, no more rows come. */
	if (f->mode == 'c')
		dt_progress_note_claimed(f->emitted, 1);
}

/* Writes the stage record; returns 0 or -1 when stdout failed. */
static int
emit_stage(struct dt_fetch *f)
{
	json_t *counts = json_pack("{sIsIsI}", f->mode == 'c' ? "claimed" :
	    "peeked", (json_int_t)f->emitted, "batches",
	    (json_int_t)f->batches, "text_cut", (json_int_t)f->cut);
	json_t *rec;
	int rc;

	/*
	 * With --reuse: how many rows came with a stored analysis, and how
	 * many take the analysis of a row with the same text.
	 */
	if (counts != NULL && f->reuse != NULL) {
		json_object_set_new(counts, "reused", json_integer(f->reused));
		json_object_set_new(counts, "same_text",
		    json_integer(f->same_text));
	}
	rec = dt_record_stage("dt-fetch", f->run_id, f->status, f->message,
	    counts, NULL, stop_flag);
	rc = rec != NULL ? dt_emit(rec) : -1;

	json_decref(rec);
	return rc;
}

int
dt_fetch_finish(struct dt_fetch *f)
{
	if (stop_flag && f->status == DT_EXIT_OK) {
		f->status = DT_EXIT_TEMPFAIL;
		snprintf(f->message, sizeof(f->message),
		    "interrupted after %lld rows", f->emitted);
		dt_warn("%s", f->message);
	}
	if (f->status != DT_EXIT_PIPE)
		emit_stage(f);
	dt_info("run %s: %s %lld rows in %lld batches", f->run_id,
	    f->mode == 'c' ? "claimed" : "peeked", f->emitted, f->batches);
	return f->status;
}

int
dt_fetch_dry_run(struct dt_fetch *f)
{
	json_t *args = dt_fetch_request_args(f, f->max_records > 0 &&
	    f->max_records < f->batch ? f->max_records : f->batch, NULL);
	json_t *out = json_pack("{sssssssO}", "dry_run", "dt-fetch",
	    "method", "POST", "path", f->mode == 'c' ? "/rest/v1/rpc/dt_claim" :
	    "/rest/v1/rpc/dt_peek", "body", args);
	int rc = out != NULL ? dt_emit(out) : -1;

	json_decref(args);
	json_decref(out);
	return rc < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
}
