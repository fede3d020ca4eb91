/*
 * dt-store: writes analyzed records to Supabase in batches, one dt_settle
 * call a batch, and prints one status line per record once its batch is
 * committed.  It drains: a first signal or a Supabase outage does not
 * make it drop what was analyzed (and paid for) already.  See
 * docs/supabase.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "record.h"

#include "store.h"

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
    "Through a Supabase outage dt-store probes with backoff and sends the\n"
    "batch again, for at most DT_STORE_OUTAGE_SECONDS and half of\n"
    "DT_DRAIN_SECONDS after the run stops (DT_STOP_FILE, or a first signal).\n"
    "SIGTERM, SIGINT: the rest of the input is still stored; a second one\n"
    "ends the program.  Exit status: 0 all stored, skipped (no text) or\n"
    "released (given back unanalyzed), 1 some records failed, 64 usage,\n"
    "65 bad input, 69 Supabase unavailable (records not stored stay leased\n"
    "and come back), 74 output error, 78 bad configuration.\n";

volatile sig_atomic_t dt_store_got_signal;

/* A first SIGTERM or SIGINT is noted; a second one ends the program. */
static void
on_signal(int sig)
{
	dt_store_got_signal = sig;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
}

void
dt_store_worse(struct dt_store *s, int status)
{
	s->status = dt_exit_worse(s->status, status);
}

/* A bad input record (at where; NULL: logged already): failed, and why. */
static void
emit_bad(struct dt_store *s, json_t *rec, const char *why, const char *where)
{
	if (where != NULL)
		dt_warn("%s: %s", where, why);
	if (json_object_get(rec, "error") == NULL)
		dt_record_set_error(rec, "bad_record", 0, "%s", why);
	s->bad++;
	dt_store_worse(s, DT_EXIT_DATAERR);
	dt_store_emit_status(s, rec, json_pack("{ssss}", "outcome",
	    "bad_record", "message", why), "failed");
}

/* rec's run id, else --run-id's (NULL when neither). */
static const char *
run_of(struct dt_store *s, json_t *rec)
{
	const char *run = json_string_value(json_object_get(rec, "run_id"));

	return run != NULL && *run != '\0' ? run : s->default_run;
}

/* Takes one input record, read at where, into the batch. */
static void
take(struct dt_store *s, json_t *rec, const char *where)
{
	const char *why = NULL, *run;
	json_t *id;

	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		/* Another stage's record passes through, in its place. */
		dt_store_flush(s);
		dt_emit(rec);
		return;
	}
	dt_progress_add(&s->progress, rec);
	run = run_of(s, rec);
	if (dt_record_id(rec, &id, &why) == 0 &&
	    !json_is_object(json_object_get(rec, "error")) &&
	    !json_is_object(json_object_get(rec, "analysis")) &&
	    !json_is_object(json_object_get(rec, "skip")))
		why = "no \"analysis\", \"error\" or \"skip\" object";
	else if (why == NULL && run == NULL)
		why = "no \"run_id\" (and no --run-id)";
	if (why != NULL) {
		emit_bad(s, rec, why, where);
		return;
	}
	if (s->first_run == NULL)
		s->first_run = strdup(run);
	/* Records sent again may have filled the batch. */
	if ((s->run_id != NULL && strcmp(s->run_id, run) != 0) ||
	    (long long)json_array_size(s->batch) >= s->batch_size)
		dt_store_flush(s);
	if (s->run_id == NULL) {
		s->run_id = strdup(run);
		s->first_ms = dt_now_ms();
	}
	/* The text is private and large; "store" and "status" come last. */
	json_object_del(rec, "text");
	json_object_del(rec, "row");
	json_object_del(rec, "store");
	json_object_del(rec, "status");
	dt_store_note_analysis(s, rec);
	if (json_array_append(s->batch, rec) < 0) {
		dt_error("out of memory");
		dt_store_worse(s, DT_EXIT_TEMPFAIL);
		dt_store_not_stored(s, rec, "out of memory");
		return;
	}
	s->bytes += json_dumpb(rec, NULL, 0, DT_LINE_FLAGS);
	if ((long long)json_array_size(s->batch) >= s->batch_size ||
	    s->bytes >= DT_STORE_MAX_BATCH_BYTES)
		dt_store_flush(s);
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
		if (s->run_id == NULL)
			s->run_id = strdup(run_of(s, rec));
		if (s->run_id == NULL ||
		    strcmp(s->run_id, run_of(s, rec)) != 0 ||
		    json_array_append(s->batch, rec) < 0) {
			i++;
			continue;
		}
		json_array_remove(s->waiting, i);
		moved++;
	}
	if (moved > 0 && s->first_ms == 0)
		s->first_ms = dt_now_ms() + (s->max_delay < 200 ?
		    200 - s->max_delay : 0);
	return moved;
}

/* The run; the settings table points into it. */
static struct dt_store store;

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

/* Reads and checks the settings: 0, DT_EXIT_USAGE or DT_EXIT_CONFIG. */
static int
configure(struct dt_store *s, int argc, char **argv)
{
	int rc = dt_opts_parse(&cmd, argc, argv, &s->check), nconf;

	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	nconf = (rc != 0) + dt_progress_init(&s->progress);
	/* dt_claim takes run ids of 1 to 200 characters. */
	if (s->default_run != NULL && (*s->default_run == '\0' ||
	    strlen(s->default_run) > 200)) {
		dt_error("DT_RUN_ID/--run-id: must be 1 to 200 characters");
		nconf++;
	}
	if (s->check && !s->dry_run)
		nconf += dt_supabase_check();
	return nconf > 0 ? DT_EXIT_CONFIG : 0;
}

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
		dt_progress_tick(&s->progress, s->stored, s->failed,
		    s->skipped);
		/* Waits for input no longer than the batch or progress may. */
		wait = dt_progress_wait_ms(&s->progress);
		if (s->first_ms > 0) {
			left = s->first_ms + s->max_delay - dt_now_ms();
			if (left <= 0) {
				dt_store_flush(s);
				continue;
			}
			if (wait < 0 || wait > left)
				wait = left;
		}
		if (wait >= 0 && dt_reader_wait(r, (int)wait) == 0)
			continue;
		if (dt_store_got_signal != 0 && !noted++)
			dt_warn("%s: storing the rest of the input before "
			    "exiting", dt_store_got_signal == SIGINT ?
			    "SIGINT" : "SIGTERM");
		rc = dt_reader_next(r, &rec);
		if (rc == DT_NDJSON_EOF)
			break;
		if (rc == DT_NDJSON_ERROR) {
			dt_store_worse(s, DT_EXIT_DATAERR);
			continue;
		}
		if (rc == DT_NDJSON_BAD) {
			rec = dt_record_bad_line(dt_reader_where(r),
			    dt_reader_error(r), dt_reader_excerpt(r));
			if (rec != NULL)
				emit_bad(s, rec, dt_reader_error(r), NULL);
		} else
			take(s, rec, dt_reader_where(r));
		json_decref(rec);
	}
	dt_store_flush(s);
	/* What still waits for another row's analysis is asked a last time. */
	s->final = 1;
	while (wait_take(s) > 0)
		dt_store_flush(s);
}

/* Writes the stage record and logs the closing line. */
static void
finish(struct dt_store *s)
{
	char reused[48] = "", unchanged[48] = "", released[48] = "";
	json_t *rec = dt_record_stage("dt-store", s->first_run, s->status,
	    s->message, json_pack("{sIsIsIsIsIsIsIsIsIsIso*}",
	    "stored", (json_int_t)s->stored, "released",
	    (json_int_t)s->released, "failed", (json_int_t)s->failed,
	    "skipped", (json_int_t)s->skipped, "unchanged",
	    (json_int_t)s->unchanged, "lost", (json_int_t)s->lost,
	    "not_stored", (json_int_t)s->not_stored, "bad", (json_int_t)s->bad,
	    "batches", (json_int_t)s->batches, "outages",
	    (json_int_t)s->outages, "reused", s->reused > 0 ?
	    json_integer(s->reused) : NULL), NULL, 0);

	dt_emit(rec);
	json_decref(rec);
	/* A status line or the stage record could not be written. */
	dt_store_worse(s, dt_out_status());
	if (s->reused > 0)
		snprintf(reused, sizeof(reused), " (%lld reused)", s->reused);
	if (s->released > 0)
		snprintf(released, sizeof(released), ", released %lld",
		    s->released);
	if (s->reclaim)
		snprintf(unchanged, sizeof(unchanged), ", unchanged %lld",
		    s->unchanged);
	dt_info("%sstored %lld%s, failed %lld, skipped %lld%s%s in %lld "
	    "requests", s->reclaim ? "reclaimed: " : "", s->stored, reused,
	    s->failed, s->skipped, unchanged, released, s->batches);
}

int
main(int argc, char **argv)
{
	struct dt_store *s = &store;
	struct dt_reader *r;
	int rc;

	if (dt_cli_start("dt-store") < 0)
		return DT_EXIT_CONFIG;
	if ((rc = configure(s, argc, argv)) != 0 || s->check)
		return rc;
	/* No dt_http_set_stop_flag(): a signal must not cut retries short. */
	dt_cli_catch_signals(on_signal, SA_RESTART);
	s->batch = json_array();
	s->waiting = json_array();
	s->wanted = json_object();
	if (!s->dry_run && (s->sb = dt_supabase_new()) == NULL) {
		s->dead = 1;
		snprintf(s->message, sizeof(s->message),
		    "bad Supabase configuration (see the log)");
		dt_store_worse(s, DT_EXIT_CONFIG);
	}
	r = dt_reader_new(argv + optind, argc - optind, (size_t)s->max_line);
	if (r == NULL || s->batch == NULL || s->waiting == NULL ||
	    s->wanted == NULL) {
		dt_error("out of memory");
		return DT_EXIT_TEMPFAIL;
	}
	loop(s, r);
	if (dt_reader_nbad(r) > 0 || dt_reader_nfail(r) > 0)
		dt_store_worse(s, DT_EXIT_DATAERR);
	dt_reader_free(r);
	dt_supabase_free(s->sb);
	json_decref(s->batch);
	json_decref(s->waiting);
	json_decref(s->wanted);
	if (s->message[0] == '\0' && (s->bad > 0 ||
	    s->status == DT_EXIT_PARTIAL))
		snprintf(s->message, sizeof(s->message), s->bad > 0 ?
		    "%lld bad input records" : "%lld records failed",
		    s->bad > 0 ? s->bad : s->failed);
	finish(s);
	free(s->run_id);
	free(s->first_run);
	return dt_cli_close_stdout(s->status);
}
