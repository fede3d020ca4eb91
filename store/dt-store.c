/*
 * dt-store: stores analyzed records through Supabase, a batch a call, and
 * writes a status line per record once its batch committed; it drains
 * through signals and outages (docs/supabase.md).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "progress.h"
#include "record.h"
#include "supabase.h"

static const char usage_head[] =
    "usage: dt-store [-hnqvV] [-b size] [-d ms] [-L bytes] [-r run-id]\n"
    "                [file ...]\n"
    "       dt-store --reclaim [-hnqvV] [-b size] [-r run-id] file ...\n"
    "       dt-store --check-config [-n] [option ...]\n"
    "\n"
    "Stores analyzed records (from the files, or stdin) through Supabase\n"
    "and writes one status line per record once its batch is committed,\n"
    "then a stage record; earlier stages' records pass through.\n";

static const char usage_tail[] =
    "Through an outage it probes Supabase and sends the batch again, for at\n"
    "most DT_STORE_OUTAGE_SECONDS, or half of DT_DRAIN_SECONDS after a stop\n"
    "(DT_STOP_FILE, or a first SIGTERM or SIGINT: the input is still stored;\n"
    "a second one ends it).  Exit status: 0 all stored, skipped or released,\n"
    "1 some failed, 64 usage, 65 bad input, 69 Supabase unavailable (records\n"
    "not stored come back), 74 output error, 78 bad configuration.\n";

static struct dt_store {
	long long batch_size, max_delay, max_line, outage_s, drain_s;
	int dry_run, check, reclaim;
	const char *stop_file, *default_run;
	struct dt_supabase *sb; /* NULL after a fatal error (message) */
	long long stop_ms;      /* when the run stopped (dt_now_ms()), or 0 */

	/* Records of one run, without "text", "row", "store", "status". */
	json_t *held;           /* batch, waiting, wanted; borrowed below */
	json_t *batch;
	size_t bytes;           /* as JSON text; it goes at 4 MiB */
	const char *run_id;     /* the batch's run, borrowed from it */
	long long first_ms;     /* when the first record came */
	json_t *waiting;        /* records waiting for another's analysis */
	json_t *wanted;         /* by source id, analyses followers take */
	int final;              /* the input has ended */

	struct dt_progress progress;
	char *first_run;        /* the stage record's run */
	json_t *counts;         /* the stage record's counts */
	int status;
	char message[1100];     /* the stage record's; why, once dead */
} store;

/* The first SIGTERM or SIGINT; a second one ends the program. */
static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
}

/* Adds n to the count name (0: only reads it).  Returns the count. */
static long long
count(struct dt_store *s, const char *name, long long n)
{
	n += json_integer_value(json_object_get(s->counts, name));
	if (n != 0)
		json_object_set_new(s->counts, name, json_integer(n));
	return n;
}

/* src[key] when it is a string, else dflt. */
static const char *
text_or(json_t *src, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(src, key));

	return v != NULL ? v : dflt;
}

/* src[key] when it is a count an integer column holds, else NULL. */
static json_t *
column(json_t *src, const char *key)
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

	return json_is_string(as) && !json_is_object(json_object_get(rec,
	    "error")) && strcmp(text_or(json_object_get(rec, "skip"),
	    "reason", ""), "same_text") == 0 ? as : NULL;
}

/* rec's source id as text: the string, or the integer written in buf. */
static const char *
sid_of(json_t *rec, char buf[32])
{
	snprintf(buf, 32, "%" JSON_INTEGER_FORMAT,
	    json_integer_value(json_object_get(rec, "id")));
	return text_or(rec, "id", buf);
}

/* rec's run id, else --run-id's (NULL when neither). */
static const char *
run_of(struct dt_store *s, json_t *rec)
{
	const char *run = json_string_value(json_object_get(rec, "run_id"));

	return run != NULL && *run != '\0' ? run : s->default_run;
}

/* Writes rec with "store": result (stolen), its "status", and counts it. */
static void
emit_status(struct dt_store *s, json_t *rec, json_t *result)
{
	const char *status = text_or(result, "outcome", "");
	json_t *as = same_text_as(rec);

	if (strcmp(status, "settled") == 0 || strcmp(status, "held") == 0 ||
	    strcmp(status, "pending") == 0 || strcmp(status, "dry_run") == 0)
		status = "unchanged";
	else if (strcmp(status, "stored") != 0 &&
	    strcmp(status, "skipped") != 0 && strcmp(status, "released") != 0)
		status = "failed";
	count(s, status, 1);
	if (strcmp(status, "failed") == 0)
		s->status = dt_exit_worse(s->status, DT_EXIT_PARTIAL);
	else if (strcmp(status, "stored") == 0 && (as != NULL ||
	    json_is_object(json_object_get(rec, "reused"))))
		count(s, "reused", 1);
	if (strcmp(status, "stored") == 0 && as != NULL)
		json_object_update(rec, json_object_get(s->wanted,
		    json_string_value(as)));
	json_object_set_new(rec, "store", result ? result : json_null());
	json_object_set_new(rec, "status", json_string(status));
	dt_emit(rec);
}

/* Writes rec as failed ("bad_record" or "not_stored") for why. */
static void
failed(struct dt_store *s, json_t *rec, const char *outcome,
    const char *why, int status)
{
	s->status = dt_exit_worse(s->status, status);
	count(s, strcmp(outcome, "bad_record") == 0 ? "bad" : outcome, 1);
	emit_status(s, rec, json_pack("{ssss}", "outcome", outcome,
	    "message", why));
}

/*
 * rec's element of a dt_settle request (new; NULL: out of memory).  Notes
 * in s->wanted the analysis rec follows, or has for a follower.
 */
static json_t *
settle_item(struct dt_store *s, json_t *rec)
{
	json_t *error = json_object_get(rec, "error"), *as = same_text_as(rec);
	json_t *retryable = json_object_get(error, "retryable");
	json_t *skip = json_object_get(rec, "skip");
	json_t *usage = json_object_get(rec, "usage");
	json_t *cost = json_object_get(rec, "cost_usd");
	json_t *from = json_object_get(json_object_get(rec, "reused"), "from");
	json_t *analysis = json_object_get(rec, "analysis");
	char num[32];
	const char *sid = sid_of(rec, num);

	if (as != NULL) {
		json_object_update_missing_new(s->wanted, json_pack("{sn}",
		    json_string_value(as)));
		return json_pack("{sss{sOso*}}", "id", sid, "same_text", "as",
		    as, "final", s->final ? json_true() : NULL);
	}
	if (json_is_object(error))
		return json_pack("{sss{sssssO*}}", "id", sid, "error", "kind",
		    text_or(error, "kind", "bad_record"), "message",
		    text_or(error, "message", ""),
		    "retryable", json_is_boolean(retryable) ? retryable : NULL);
	if (!json_is_object(analysis))
		return json_pack("{sss{ssss}}", "id", sid, "skip", "reason",
		    text_or(skip, "reason", "no_text"), "message",
		    text_or(skip, "message", ""));
	if (json_is_null(json_object_get(s->wanted, sid)))
		json_object_set_new(s->wanted, sid, json_pack("{sOsO?sO?}",
		    "analysis", analysis, "model", json_object_get(rec,
		    "model"), "prompt_version", json_object_get(rec,
		    "prompt_version")));
	if (!json_is_number(cost))
		cost = json_object_get(usage, "cost_usd");
	return json_pack("{sssOss*ss*sO*sO*sO*sO*sO*so*}", "id", sid,
	    "analysis", analysis,
	    "model", text_or(rec, "model", NULL),
	    "prompt_version", text_or(rec, "prompt_version", NULL),
	    "prompt_tokens", column(usage, "prompt_tokens"),
	    "completion_tokens", column(usage, "completion_tokens"),
	    "total_tokens", column(usage, "total_tokens"),
	    "latency_ms", column(rec, "latency_ms"),
	    "cost_usd", json_is_number(cost) ? cost : NULL,
	    "reused", json_is_string(from) ? json_pack("{sO}", "from", from) :
	    NULL);
}

/* When to give up an outage begun at start; a stop brings it nearer. */
static long long
give_up_at(struct dt_store *s, long long start)
{
	long long until = start + s->outage_s * 1000, age;
	struct timespec now;
	struct stat st;

	if (s->stop_ms == 0 && got_signal != 0)
		s->stop_ms = dt_now_ms();
	if (s->stop_ms == 0 && s->stop_file != NULL &&
	    stat(s->stop_file, &st) == 0 &&
	    clock_gettime(CLOCK_REALTIME, &now) == 0) {
		age = (now.tv_sec - st.st_mtim.tv_sec) * 1000LL +
		    (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
		s->stop_ms = dt_now_ms() - (age > 0 ? age : 0);
	}
	if (s->stop_ms != 0 && s->stop_ms + s->drain_s * 500 < until)
		until = s->stop_ms + s->drain_s * 500;
	return until;
}

/* Probes path through an outage: 0 once Supabase answers, else -1. */
static int
outage_wait(struct dt_store *s, const char *path, const char *why)
{
	static const struct dt_http_policy pol = {.max_tries = 1,
	    .base_ms = 250, .cap_ms = 5000};
	long long start = dt_now_ms(), until, now, wait;
	struct dt_sb_result res;
	int n, kind = DT_SB_UNAVAILABLE;
	json_t *probe;

	if (give_up_at(s, start) <= start || (probe = json_pack("{sss[]}",
	    "p_run_id", s->run_id, "p_results")) == NULL)
		return -1;
	count(s, "outages", 1);
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
		/* res.message stays: it says why on the way out. */
		kind = dt_supabase_call(s->sb, "POST", path, probe, NULL, 0,
		    &res);
		json_decref(res.body);
		why = res.message;
		if (kind != DT_SB_UNAVAILABLE && kind != DT_SB_TIMEOUT)
			break;
	}
	json_decref(probe);
	if (kind != DT_SB_UNAVAILABLE && kind != DT_SB_TIMEOUT) {
		dt_info("Supabase answers again after %lld ms; sending the "
		    "batch again", dt_now_ms() - start);
		return 0;
	}
	dt_error("Supabase still unavailable after %lld s (%s); giving up",
	    (dt_now_ms() - start) / 1000, why);
	return -1;
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
		if ((outcome = text_or(row, "outcome", NULL)) == NULL) {
			failed(s, rec, "not_stored", "the server did not "
			    "report on this record", DT_EXIT_TEMPFAIL);
			continue;
		}
		/* Sent again once its row is settled (fails out of memory). */
		if (strcmp(outcome, "waiting") == 0 &&
		    json_array_append(s->waiting, rec) == 0)
			continue;
		if (strcmp(outcome, "lost") == 0) {
			count(s, "lost", 1);
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
		emit_status(s, rec, json_pack("{sssO?}", "outcome", outcome,
		    "attempts", json_object_get(row, "attempts")));
	}
	json_decref(by_id);
}

/* Sends records [from, to) into *res: the probes answered, 0 to 2. */
static int
post(struct dt_store *s, size_t from, size_t to, struct dt_sb_result *res)
{
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
	*res = (struct dt_sb_result){.kind = DT_SB_UNAVAILABLE,
	    .message = "out of memory"};
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
	count(s, "batches", 1);
	return answered;
}

/*
 * Sends records [from, to) and writes their status lines; after a 400 or
 * while only the probes are answered, one by one; else storing ends.
 */
static void
send_range(struct dt_store *s, size_t from, size_t to)
{
	struct dt_sb_result res = {.kind = DT_SB_UNAVAILABLE};
	char why[1200], id[210];
	json_t *rec = json_array_get(s->batch, from);
	int answered = s->sb != NULL ? post(s, from, to, &res) : 0;
	size_t i;

	if (res.kind == DT_SB_OK && json_is_array(res.body))
		emit_outcomes(s, from, to, res.body);
	else if (to - from > 1 && (res.kind == DT_SB_REJECTED ||
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
		failed(s, rec, "not_stored", why, answered == 2 ?
		    dt_sb_exit(res.kind) : DT_EXIT_DATAERR);
	} else {
		if (s->sb != NULL) {
			dt_supabase_free(s->sb);
			s->sb = NULL;
			snprintf(s->message, sizeof(s->message), "Supabase %s: "
			    "%s", res.kind == DT_SB_CONFIG ? "refused the "
			    "request" : "unavailable", res.message);
			dt_error("%s; the records not stored stay leased and "
			    "come back after the lease expires", s->message);
			s->status = dt_exit_worse(s->status, res.kind ==
			    DT_SB_BADREPLY ? DT_EXIT_TEMPFAIL :
			    dt_sb_exit(res.kind));
		}
		for (i = from; i < to; i++)
			failed(s, json_array_get(s->batch, i), "not_stored",
			    s->message, DT_EXIT_OK);
	}
	dt_sb_result_clear(&res);
}

/* Sends the batch (--dry-run: says what it would send) and empties it. */
static void
flush(struct dt_store *s)
{
	json_t *rec;
	size_t i;

	if (s->dry_run) {
		json_array_foreach(s->batch, i, rec)
			emit_status(s, rec, json_pack("{ssssso}", "outcome",
			    "dry_run", "run_id", s->run_id, "would",
			    settle_item(s, rec)));
	} else if (json_array_size(s->batch) > 0)
		send_range(s, 0, json_array_size(s->batch));
	json_array_clear(s->batch);
	s->bytes = 0;
	s->run_id = NULL;
	s->first_ms = 0;
}

/* Takes one input record, read at where, into the batch. */
static void
take(struct dt_store *s, json_t *rec, const char *where)
{
	const char *why = NULL, *run = run_of(s, rec);
	json_t *id;

	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		/* Another stage's record passes through, in its place. */
		flush(s);
		dt_emit(rec);
		return;
	}
	dt_progress_add(&s->progress, rec);
	if (dt_record_id(rec, &id, &why) == 0 &&
	    !json_is_object(json_object_get(rec, "error")) &&
	    !json_is_object(json_object_get(rec, "analysis")) &&
	    !json_is_object(json_object_get(rec, "skip")))
		why = "no \"analysis\", \"error\" or \"skip\" object";
	else if (why == NULL && run == NULL)
		why = "no \"run_id\" (and no --run-id)";
	if (why != NULL) {
		dt_warn("%s: %s", where, why);
		if (json_object_get(rec, "error") == NULL)
			dt_record_set_error(rec, "bad_record", 0, "%s", why);
		failed(s, rec, "bad_record", why, DT_EXIT_DATAERR);
		return;
	}
	if (s->first_run == NULL)
		s->first_run = strdup(run);
	/* Records sent again may have filled the batch. */
	if ((s->run_id != NULL && strcmp(s->run_id, run) != 0) ||
	    (long long)json_array_size(s->batch) >= s->batch_size)
		flush(s);
	/* The text is private and large; "store" and "status" come last. */
	json_object_del(rec, "text");
	json_object_del(rec, "row");
	json_object_del(rec, "store");
	json_object_del(rec, "status");
	if (json_array_append(s->batch, rec) < 0) {
		dt_error("out of memory");
		failed(s, rec, "not_stored", "out of memory", DT_EXIT_TEMPFAIL);
		return;
	}
	if (s->run_id == NULL) {
		s->run_id = run;
		s->first_ms = dt_now_ms();
	}
	s->bytes += json_dumpb(rec, NULL, 0, DT_LINE_FLAGS);
	if ((long long)json_array_size(s->batch) >= s->batch_size ||
	    s->bytes >= (size_t)4 << 20)
		flush(s);
}

/* Moves waiting records of one run into the batch, to go in 200 ms. */
static size_t
wait_take(struct dt_store *s)
{
	size_t i = 0, moved = 0;
	json_t *rec;

	while (i < json_array_size(s->waiting) &&
	    (long long)json_array_size(s->batch) < s->batch_size) {
		rec = json_array_get(s->waiting, i);
		if ((s->run_id != NULL && strcmp(s->run_id, run_of(s, rec)) !=
		    0) || json_array_append(s->batch, rec) < 0)
			i++;
		else {
			s->run_id = run_of(s, rec);
			json_array_remove(s->waiting, i);
			moved++;
		}
	}
	if (moved > 0 && s->first_ms == 0)
		s->first_ms = dt_now_ms() + (s->max_delay < 200 ?
		    200 - s->max_delay : 0);
	return moved;
}

static const struct dt_opt opt[] = {
	{'b', "batch-size", "DT_STORE_BATCH", DT_OPT_INT, &store.batch_size,
	    "100", 1, 1000, "n", "records per request"},
	{'d', "max-delay", "DT_STORE_MAX_DELAY_MS", DT_OPT_INT,
	    &store.max_delay, "1000", 0, 3600000, "ms",
	    "send a batch once its first record waited this long"},
	{.ch = 'L', .flag = "max-line", .env = "DT_MAX_LINE",
	    .type = DT_OPT_SHARED, .out = &store.max_line},
	{'n', "dry-run", NULL, DT_OPT_SWITCH, &store.dry_run, NULL, 0, 0,
	    NULL, "validate and print what would be written"},
	{0, "reclaim", NULL, DT_OPT_SWITCH, &store.reclaim, NULL, 0, 0, NULL,
	    "store a saved run's output (its analyze.ndjson) after its leases "
	    "expired; rows settled or held meanwhile stay \"unchanged\""},
	{'r', "run-id", "DT_RUN_ID", DT_OPT_TEXT, &store.default_run, NULL,
	    0, 0, "id", "run id for records that carry none"},
	DT_OPT_LIB("TIMEOUT_SECONDS"),
	DT_OPT_SUPABASE,
	{0, NULL, "DT_STORE_OUTAGE_SECONDS", DT_OPT_INT, &store.outage_s,
	    "3600", 0, 86400, "s", "how long one Supabase outage is waited "
	    "through"},
	DT_OPT_USE("DT_DRAIN_SECONDS", &store.drain_s),
	DT_OPT_USE("DT_STOP_FILE", &store.stop_file),
	DT_OPT_LIB("DT_PROGRESS_SECONDS"),
	DT_OPT_LIB("DT_MAX_RECORDS"),
	DT_OPT_LIB("DT_DEADLINE_SECONDS"),
};

static const struct dt_cmd cmd = {usage_head, usage_tail, opt,
    sizeof(opt) / sizeof(opt[0])};

/* Reads, batches and stores until the input ends. */
static void
loop(struct dt_store *s, struct dt_reader *r)
{
	json_t *rec;
	long long wait, left;
	int rc, noted = 0;

	for (;;) {
		if (json_array_size(s->batch) == 0)
			wait_take(s);
		dt_progress_tick(&s->progress, count(s, "stored", 0),
		    count(s, "failed", 0), count(s, "skipped", 0));
		wait = dt_progress_wait_ms(&s->progress);
		left = s->first_ms + s->max_delay - dt_now_ms();
		if (s->first_ms > 0 && left <= 0) {
			flush(s);
			continue;
		}
		if (s->first_ms > 0 && (wait < 0 || wait > left))
			wait = left;
		if (wait >= 0 && dt_reader_wait(r, (int)wait) == 0)
			continue;
		if (got_signal != 0 && !noted++)
			dt_warn("%s: storing the rest of the input before "
			    "exiting", got_signal == SIGINT ? "SIGINT" :
			    "SIGTERM");
		if ((rc = dt_reader_next(r, &rec)) == DT_NDJSON_EOF)
			break;
		if (rc == DT_NDJSON_RECORD)
			take(s, rec, dt_reader_where(r));
		else if (rec != NULL)
			failed(s, rec, "bad_record", dt_reader_error(r),
			    DT_EXIT_DATAERR);
		else    /* a file that cannot be read, or out of memory */
			s->status = dt_exit_worse(s->status, DT_EXIT_DATAERR);
		json_decref(rec);
	}
	flush(s);
	/* What still waits for another row's analysis is asked a last time. */
	s->final = 1;
	while (wait_take(s) > 0)
		flush(s);
}

/* Writes the stage record, which takes s->counts, and the closing line. */
static void
finish(struct dt_store *s)
{
	json_int_t n[8] = {0, 0, 0, 0, 0, 0, 0, 0};
	char reused[48] = "", unchanged[48] = "", released[48] = "";
	json_t *rec;

	json_unpack(s->counts, "{sIsIsIsIsIsIsIs?I}", "stored", &n[0],
	    "released", &n[1], "failed", &n[2], "skipped", &n[3], "unchanged",
	    &n[4], "batches", &n[5], "bad", &n[6], "reused", &n[7]);
	if (s->message[0] == '\0' && (n[6] > 0 ||
	    s->status == DT_EXIT_PARTIAL))
		snprintf(s->message, sizeof(s->message), n[6] > 0 ?
		    "%lld bad input records" : "%lld records failed",
		    n[6] > 0 ? n[6] : n[2]);
	rec = dt_record_stage("dt-store", s->first_run, s->status, s->message,
	    s->counts, NULL, 0);
	dt_emit(rec);
	json_decref(rec);
	/* A status line or the stage record could not be written. */
	s->status = dt_exit_worse(s->status, dt_out_status());
	if (n[7] > 0)
		snprintf(reused, sizeof(reused), " (%lld reused)", n[7]);
	if (s->reclaim)
		snprintf(unchanged, sizeof(unchanged), ", unchanged %lld",
		    n[4]);
	if (n[1] > 0)
		snprintf(released, sizeof(released), ", released %lld", n[1]);
	dt_info("%sstored %lld%s, failed %lld, skipped %lld%s%s in %lld "
	    "requests", s->reclaim ? "reclaimed: " : "", n[0], reused, n[2],
	    n[3], unchanged, released, n[5]);
}

int
main(int argc, char **argv)
{
	struct dt_store *s = &store;
	struct dt_reader *r;
	int rc;

	if (dt_cli_start("dt-store") < 0)
		return DT_EXIT_CONFIG;
	rc = dt_opts_parse(&cmd, argc, argv, &s->check);
	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	rc = (rc != 0) + dt_progress_init(&s->progress);
	if (s->default_run != NULL && (*s->default_run == '\0' ||
	    strlen(s->default_run) > 200)) {
		dt_error("DT_RUN_ID/--run-id: must be 1 to 200 characters");
		rc++;
	}
	if (s->check && !s->dry_run)
		rc += dt_supabase_check();
	if (rc > 0 || s->check)
		return rc > 0 ? DT_EXIT_CONFIG : DT_EXIT_OK;
	/* No dt_http_set_stop_flag(): a signal must not cut retries short. */
	dt_cli_catch_signals(on_signal, SA_RESTART);
	if (!s->dry_run && (s->sb = dt_supabase_new()) == NULL) {
		snprintf(s->message, sizeof(s->message),
		    "bad Supabase configuration (see the log)");
		s->status = DT_EXIT_CONFIG;
	}
	s->held = json_pack("{s[]s[]s{}}", "batch", "waiting", "wanted");
	json_unpack(s->held, "{sososo}", "batch", &s->batch, "waiting",
	    &s->waiting, "wanted", &s->wanted);
	s->counts = json_pack("{sisisisisisisisisisi}", "stored", 0,
	    "released", 0, "failed", 0, "skipped", 0, "unchanged", 0, "lost",
	    0, "not_stored", 0, "bad", 0, "batches", 0, "outages", 0);
	r = dt_reader_new(argv + optind, argc - optind, (size_t)s->max_line);
	if (r == NULL || s->held == NULL || s->counts == NULL) {
		dt_error("out of memory");
		return DT_EXIT_TEMPFAIL;
	}
	loop(s, r);
	dt_reader_free(r);
	finish(s);
	dt_supabase_free(s->sb);
	json_decref(s->held);
	free(s->first_run);
	return dt_cli_close_stdout(s->status);
}
