/*
 * send.c: sending a batch to dt_settle (or dt_reclaim), through outages and
 * bad records, and the status lines of its outcomes (store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "record.h"

#include "store.h"

/* v's text when it is a string, else dflt. */
static const char *
text_or(json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* src[key] when it is a count an integer column holds, else NULL. */
static json_t *
count(json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 2147483647 ? v : NULL;
}

/* The source id of the row whose analysis rec takes, or NULL. */
static json_t *
same_text_as(json_t *rec)
{
	json_t *as = json_object_get(json_object_get(rec, "same_text"), "as");
	const char *reason = json_string_value(json_object_get(
	    json_object_get(rec, "skip"), "reason"));

	if (json_is_object(json_object_get(rec, "error")) ||
	    !json_is_string(as) || reason == NULL ||
	    strcmp(reason, "same_text") != 0)
		return NULL;
	return as;
}

/* rec's source id as text: the string, or the integer written in buf. */
static const char *
sid_of(json_t *rec, char buf[32])
{
	json_t *id = json_object_get(rec, "id");

	if (json_is_string(id))
		return json_string_value(id);
	snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
	return buf;
}

void
dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status)
{
	json_t *as = same_text_as(rec), *w;

	if (strcmp(status, "stored") == 0) {
		s->stored++;
		if (as != NULL ||
		    json_is_object(json_object_get(rec, "reused")))
			s->reused++;
		if (as != NULL && json_is_object(w = json_object_get(s->wanted,
		    json_string_value(as))))
			json_object_update(rec, w);
	} else if (strcmp(status, "skipped") == 0)
		s->skipped++;
	else if (strcmp(status, "unchanged") == 0)
		s->unchanged++;
	else if (strcmp(status, "released") == 0)
		s->released++;
	else {
		s->failed++;
		dt_store_worse(s, DT_EXIT_PARTIAL);
	}
	json_object_set_new(rec, "store", store != NULL ? store : json_null());
	json_object_set_new(rec, "status", json_string(status));
	dt_emit(rec);
}

void
dt_store_not_stored(struct dt_store *s, json_t *rec, const char *why)
{
	s->not_stored++;
	dt_store_emit_status(s, rec, json_pack("{ssss}", "outcome",
	    "not_stored", "message", why), "failed");
}

void
dt_store_note_analysis(struct dt_store *s, json_t *rec)
{
	json_t *as = same_text_as(rec), *analysis;
	char num[32];
	const char *sid = sid_of(rec, num);

	if (as != NULL)         /* {as: null} unless it is there already */
		json_object_update_missing_new(s->wanted, json_pack("{sn}",
		    json_string_value(as)));
	analysis = json_object_get(rec, "analysis");
	if (json_is_object(analysis) &&
	    json_is_null(json_object_get(s->wanted, sid)))
		json_object_set_new(s->wanted, sid, json_pack("{sOsO?sO?}",
		    "analysis", analysis, "model", json_object_get(rec,
		    "model"), "prompt_version", json_object_get(rec,
		    "prompt_version")));
}

/*
 * rec's element of a dt_settle request (docs/supabase.md), its id as
 * text.  Returns a new reference, or NULL when out of memory.
 */
static json_t *
settle_item(struct dt_store *s, json_t *rec)
{
	json_t *error = json_object_get(rec, "error");
	json_t *retryable = json_object_get(error, "retryable");
	json_t *skip = json_object_get(rec, "skip");
	json_t *as = same_text_as(rec);
	json_t *usage = json_object_get(rec, "usage");
	json_t *model = json_object_get(rec, "model");
	json_t *version = json_object_get(rec, "prompt_version");
	json_t *cost = json_object_get(rec, "cost_usd");
	json_t *from = json_object_get(json_object_get(rec, "reused"), "from");
	char num[32];
	const char *sid = sid_of(rec, num);

	if (as != NULL)
		return json_pack("{sss{sOso*}}", "id", sid, "same_text", "as",
		    as, "final", s->final ? json_true() : NULL);
	/* dt_settle parks a record whose error is not retryable. */
	if (json_is_object(error))
		return json_pack("{sss{sssssO*}}", "id", sid, "error", "kind",
		    text_or(json_object_get(error, "kind"), "bad_record"),
		    "message", text_or(json_object_get(error, "message"), ""),
		    "retryable", json_is_boolean(retryable) ? retryable :
		    NULL);
	if (!json_is_object(json_object_get(rec, "analysis")))
		return json_pack("{sss{ssss}}", "id", sid, "skip", "reason",
		    text_or(json_object_get(skip, "reason"), "no_text"),
		    "message", text_or(json_object_get(skip, "message"), ""));
	if (!json_is_number(cost))
		cost = json_object_get(usage, "cost_usd");
	/* "O*" leaves out a member whose value is NULL. */
	return json_pack("{sssOsO*sO*sO*sO*sO*sO*sO*so*}", "id", sid,
	    "analysis", json_object_get(rec, "analysis"),
	    "model", json_is_string(model) ? model : NULL,
	    "prompt_version", json_is_string(version) ? version : NULL,
	    "prompt_tokens", count(usage, "prompt_tokens"),
	    "completion_tokens", count(usage, "completion_tokens"),
	    "total_tokens", count(usage, "total_tokens"),
	    "latency_ms", count(rec, "latency_ms"),
	    "cost_usd", json_is_number(cost) ? cost : NULL,
	    "reused", json_is_string(from) ? json_pack("{sO}", "from", from) :
	    NULL);
}

/*
 * When to give up on an outage that began at start: DT_STORE_OUTAGE_SECONDS
 * later, or half of DT_DRAIN_SECONDS after the run stopped (a first
 * signal, or the stop file, whose age says when).
 */
static long long
give_up_at(struct dt_store *s, long long start)
{
	long long until = start + s->outage_s * 1000, age;
	struct timespec now;
	struct stat st;

	if (s->stop_ms == 0 && dt_store_got_signal != 0)
		s->stop_ms = dt_now_ms();
	if (s->stop_ms == 0 && s->stop_file != NULL &&
	    stat(s->stop_file, &st) == 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		age = ((long long)now.tv_sec - (long long)st.st_mtim.tv_sec) *
		    1000 + (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
		s->stop_ms = dt_now_ms() - (age > 0 ? age : 0);
		if (s->stop_ms <= 0)
			s->stop_ms = 1;
	}
	if (s->stop_ms > 0 && s->stop_ms + s->drain_s * 500 < until)
		until = s->stop_ms + s->drain_s * 500;
	return until;
}

/*
 * Waits through an outage (why: what the last request got), probing path
 * with no records after each backoff: 0 once Supabase answers, else -1.
 */
static int
outage_wait(struct dt_store *s, const char *path, const char *why)
{
	static const struct dt_http_policy pol = {.max_tries = 1,
	    .base_ms = 250, .cap_ms = 5000};
	long long start = dt_now_ms(), until, now, wait;
	char last[sizeof(((struct dt_sb_result *)0)->message)];
	struct dt_sb_result res;
	json_t *probe;
	int n, kind;

	if (give_up_at(s, start) <= start || (probe = json_pack("{sss[]}",
	    "p_run_id", s->run_id, "p_results")) == NULL)
		return -1;
	s->outages++;
	for (n = 1; (now = dt_now_ms()) < (until = give_up_at(s, start)); n++) {
		wait = dt_http_backoff_ms(&pol, n, NULL);
		if (wait > until - now)
			wait = until - now;
		dt_warn("Supabase unavailable (%s); probing again in %lld ms, "
		    "giving up in %lld s", why, wait,
		    (until - now + 999) / 1000);
		/* In slices, so that a stop meanwhile is seen. */
		for (; wait > 0 && give_up_at(s, start) > dt_now_ms();
		    wait -= 250)
			dt_sleep_ms(wait < 250 ? wait : 250);
		if (give_up_at(s, start) <= dt_now_ms())
			break;
		kind = dt_supabase_call(s->sb, "POST", path, probe, NULL, 0,
		    &res);
		snprintf(last, sizeof(last), "%s", res.message);
		why = last;
		dt_sb_result_clear(&res);
		if (kind != DT_SB_UNAVAILABLE && kind != DT_SB_TIMEOUT) {
			dt_info("Supabase answers again after %lld ms; sending "
			    "the batch again", dt_now_ms() - start);
			json_decref(probe);
			return 0;
		}
	}
	dt_error("Supabase still unavailable after %lld s (%s); giving up",
	    (dt_now_ms() - start) / 1000, why);
	json_decref(probe);
	return -1;
}

/* The status of an outcome: what --reclaim left alone is "unchanged". */
static const char *
status_of(const char *outcome)
{
	if (strcmp(outcome, "stored") == 0 ||
	    strcmp(outcome, "skipped") == 0 ||
	    strcmp(outcome, "released") == 0)
		return outcome;
	if (strcmp(outcome, "settled") == 0 || strcmp(outcome, "held") == 0 ||
	    strcmp(outcome, "pending") == 0)
		return "unchanged";
	return "failed";
}

/* Writes the status lines of records [from, to) from the reply rows. */
static void
emit_outcomes(struct dt_store *s, size_t from, size_t to, json_t *rows)
{
	json_t *by_id = json_object(), *rec, *row;
	const char *outcome;
	char num[32], id[210];
	size_t i;

	/* An id given twice has one outcome: the last row for it. */
	json_array_foreach(rows, i, row)
		json_object_set(by_id, json_string_value(json_object_get(row,
		    "source_id")), row);
	for (i = from; i < to; i++) {
		rec = json_array_get(s->batch, i);
		row = json_object_get(by_id, sid_of(rec, num));
		if ((outcome = json_string_value(json_object_get(row,
		    "outcome"))) == NULL) {
			dt_store_not_stored(s, rec, "the server did not report "
			    "on this record");
			dt_store_worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		/* Sent again once its row is settled (fails out of memory). */
		if (strcmp(outcome, "waiting") == 0 &&
		    json_array_append(s->waiting, rec) == 0)
			continue;
		if (strcmp(outcome, "lost") == 0) {
			s->lost++;
			dt_record_id_str(json_object_get(rec, "id"), id,
			    sizeof(id));
			if (s->reclaim)
				dt_warn("record %s: not reclaimed: the id is "
				    "not in dt_results", id);
			else
				dt_warn("record %s: lost: run %s no longer "
				    "holds this row (its lease expired and "
				    "another run took it over, or the id is "
				    "not in dt_results); its result is in this "
				    "run's analyze output, which dt-store "
				    "--reclaim stores once no live run holds "
				    "the row", id, s->run_id);
		}
		dt_store_emit_status(s, rec, json_pack("{sssO?}", "outcome",
		    outcome, "attempts", json_object_get(row, "attempts")),
		    status_of(outcome));
	}
	json_decref(by_id);
}

/*
 * Sends records [from, to) in one request, again after each outage, into
 * *res.  Returns how many probes were answered while it failed (0 to 2).
 */
static int
post(struct dt_store *s, size_t from, size_t to, struct dt_sb_result *res)
{
	static const struct dt_sb_result oom = {.kind = DT_SB_UNAVAILABLE,
	    .message = "out of memory"};
	const char *path = s->reclaim ? "rpc/dt_reclaim" : "rpc/dt_settle";
	json_t *items = json_array(), *req;
	char *text = NULL;
	int answered = 0;
	size_t i;

	for (i = from; i < to; i++)
		json_array_append_new(items, settle_item(s,
		    json_array_get(s->batch, i)));
	req = json_pack("{ssso}", "p_run_id", s->run_id, "p_results", items);
	if (json_array_size(items) == to - from)
		text = json_dumps(req, DT_LINE_FLAGS);
	json_decref(req);
	*res = oom;
	while (text != NULL) {
		dt_supabase_call_raw(s->sb, "POST", path, text, strlen(text),
		    NULL, 1, res);
		if ((res->kind != DT_SB_UNAVAILABLE &&
		    res->kind != DT_SB_TIMEOUT) || answered == 2 ||
		    outage_wait(s, path, res->message) < 0)
			break;
		answered++;
		dt_sb_result_clear(res);
	}
	free(text);
	s->batches++;
	return answered;
}

/*
 * Sends records [from, to) and writes their status lines.  After a 400,
 * or while the probes are answered but the request fails (a statement
 * timeout, say), they are sent one by one, and one record is given up.
 */
static void
send_range(struct dt_store *s, size_t from, size_t to)
{
	struct dt_sb_result res;
	char why[1200], id[210];
	json_t *rec = json_array_get(s->batch, from);
	size_t i;
	int answered;

	if (s->dead) {
		for (i = from; i < to; i++)
			dt_store_not_stored(s, json_array_get(s->batch, i),
			    s->message);
		return;
	}
	answered = post(s, from, to, &res);
	if (res.kind == DT_SB_OK && json_is_array(res.body)) {
		emit_outcomes(s, from, to, res.body);
	} else if (to - from > 1 && (res.kind == DT_SB_REJECTED ||
	    answered == 2)) {
		dt_warn(res.kind == DT_SB_REJECTED ? "a batch of %zu records "
		    "was rejected (%s); sending them one by one" : "a batch of "
		    "%zu records failed (%s) while Supabase answers; sending "
		    "them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			send_range(s, i, i + 1);
	} else if (answered == 2 || res.kind == DT_SB_REJECTED) {
		snprintf(why, sizeof(why), "%s: %s", answered == 2 ? "Supabase "
		    "answers, but not to this record" : "Supabase rejected it",
		    res.message);
		dt_warn("record %s: %s%s", dt_record_id_str(json_object_get(rec,
		    "id"), id, sizeof(id)), why, answered == 2 ? "; it stays "
		    "leased and comes back after the lease" : "");
		dt_store_worse(s, answered == 2 ? dt_sb_exit(res.kind) :
		    DT_EXIT_DATAERR);
		dt_store_not_stored(s, rec, why);
	} else {
		/* Unavailable, wrong key or table, or a bad reply: stop. */
		s->dead = 1;
		snprintf(s->message, sizeof(s->message), "Supabase %s: %s",
		    res.kind == DT_SB_CONFIG ? "refused the request" :
		    "unavailable", res.message);
		dt_error("%s; the records not stored stay leased and come "
		    "back after the lease expires", s->message);
		dt_store_worse(s, res.kind == DT_SB_BADREPLY ?
		    DT_EXIT_TEMPFAIL : dt_sb_exit(res.kind));
		for (i = from; i < to; i++)
			dt_store_not_stored(s, json_array_get(s->batch, i),
			    s->message);
	}
	dt_sb_result_clear(&res);
}

void
dt_store_flush(struct dt_store *s)
{
	json_t *rec;
	size_t i;

	if (s->dry_run) {
		json_array_foreach(s->batch, i, rec)
			dt_store_emit_status(s, rec, json_pack("{ssssso}",
			    "outcome", "dry_run", "run_id", s->run_id, "would",
			    settle_item(s, rec)), "unchanged");
	} else if (json_array_size(s->batch) > 0)
		send_range(s, 0, json_array_size(s->batch));
	json_array_clear(s->batch);
	s->bytes = 0;
	free(s->run_id);
	s->run_id = NULL;
	s->first_ms = 0;
}
