/*
 * dt-store: writes analyzed records to Supabase in batches and prints one
 * status line per record once its batch is committed.
 *
 * A batch is one call of the dt_settle function: results become "done",
 * record-specific errors use an attempt (and park the row at the
 * maximum), outages give the lease back without using one.  Only the run
 * holding a row's lease can change it, so storing the same input twice
 * changes nothing.  A batch goes out when it is full or when its oldest
 * record has waited --max-delay, so a slow trickle is still written
 * promptly.
 *
 * SIGTERM and SIGINT do not cut a run short: dt-store goes on reading
 * until its input ends and stores everything, because whatever it drops
 * was analyzed (and paid for) already.  For the same reason it waits
 * through a Supabase outage, probing with backoff, until the run's drain
 * window is half over (DT_STOP_FILE and DT_DRAIN_SECONDS) or
 * DT_STORE_OUTAGE_SECONDS.  A pipeline is stopped from its start
 * (dt-fetch claims no more), and its end drains.  A second signal ends
 * the program at once.  --reclaim stores a saved run's results after its
 * leases expired (dt_reclaim).  --check-config checks the configuration
 * and exits.  See docs/supabase.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#include "utf8.h"
#include "watch.h"

#include "buf.h"

static const char usage_text[] =
    "usage: dt-store [-hnqvV] [-b size] [-d ms] [-L bytes] [-r run-id]\n"
    "                [file ...]\n"
    "       dt-store -R [-hnqvV] [-b size] [-r run-id] file ...\n"
    "       dt-store --check-config [-n] [option ...]\n"
    "\n"
    "Stores analyzed records (from the files, or stdin) through Supabase's\n"
    "data API and writes one status line per record after its batch is\n"
    "committed, then a stage record.  Stage records of earlier stages pass\n"
    "through.\n"
    "\n"
    "  -b, --batch-size n   records per request (DT_STORE_BATCH, 100)\n"
    "      --check-config   check the environment and options, read the key\n"
    "                       file, read no input and connect to nothing;\n"
    "                       print nothing and exit 0 when valid, else one\n"
    "                       line per problem and exit 78\n"
    "  -d, --max-delay ms   send a batch once its first record waited this\n"
    "                       long (DT_STORE_MAX_DELAY_MS, 1000)\n"
    "  -h, --help           print this help and exit\n"
    "  -L, --max-line n     longest input line in bytes (DT_MAX_LINE, 1048576)\n"
    "  -n, --dry-run        validate and print what would be written\n"
    "  -q, --quiet          log less (repeatable)\n"
    "  -R, --reclaim        store a saved run's output (its analyze.ndjson)\n"
    "                       after its leases expired: take over each row\n"
    "                       that is still unsettled and not leased live by\n"
    "                       another run; rows settled meanwhile are left\n"
    "                       alone (status \"unchanged\")\n"
    "  -r, --run-id id      run id for records that carry none (DT_RUN_ID)\n"
    "  -v, --verbose        log more (repeatable)\n"
    "  -V, --version        print the version and exit\n"
    "\n"
    "Environment: SUPABASE_URL, SUPABASE_KEY or SUPABASE_KEY_FILE,\n"
    "TIMEOUT_SECONDS, DT_SUPABASE_TRIES, DT_SUPABASE_BACKOFF_MS.  When\n"
    "Supabase is unavailable, dt-store probes it with backoff and sends the\n"
    "batch again once it answers, for at most DT_STORE_OUTAGE_SECONDS\n"
    "(3600) per outage, and no longer than half of DT_DRAIN_SECONDS (60)\n"
    "after the run stops (DT_STOP_FILE appears, or a first signal).\n"
    "DT_PROGRESS_SECONDS (60; 0: never): a progress line that often, with\n"
    "the records done, failed and skipped, the rate, the cost so far and\n"
    "the time left (from DT_STATE_DIR/fetch.claimed, DT_MAX_RECORDS,\n"
    "DT_RUN_STARTED_AT and DT_DEADLINE_SECONDS, as dt-entrypoint sets\n"
    "them).\n"
    "SIGTERM and SIGINT: the rest of the input is still read and stored (a\n"
    "second signal ends the program at once).  Exit status: 0 all stored,\n"
    "skipped (no text) or released (given back unanalyzed, with the\n"
    "attempt: an outage, a setup error, the deadline, the budget), 1 some\n"
    "records failed, 64 usage, 65 bad input,\n"
    "69 Supabase unavailable (records not stored stay leased and come\n"
    "back), 74 output error, 78 bad configuration.\n";

/* The long-only option --check-config. */
#define OPT_CHECK_CONFIG 256

/* The longest run id dt_claim accepts. */
#define RUN_ID_MAX 200

static const struct option longopts[] = {
	{"batch-size", required_argument, NULL, 'b'},
	{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
	{"max-delay", required_argument, NULL, 'd'},
	{"help", no_argument, NULL, 'h'},
	{"max-line", required_argument, NULL, 'L'},
	{"dry-run", no_argument, NULL, 'n'},
	{"quiet", no_argument, NULL, 'q'},
	{"reclaim", no_argument, NULL, 'R'},
	{"run-id", required_argument, NULL, 'r'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

/* Keeps a batch's request small even when analyses are large. */
#define MAX_BATCH_BYTES ((size_t)4 * 1024 * 1024)

/*
 * Where one record of the batch is.  Its dt_settle element is body's
 * item_len bytes at item; its status line so far, the record without
 * its closing brace, is lines' line_len bytes at line; its source id as
 * text, NUL-terminated, is in sids at sid.
 */
struct slot {
	size_t item, item_len;
	size_t line, line_len;
	size_t sid;
	int sid_is_str;         /* a string id (else an integer) */
};

struct store {
	long long batch_size;
	long long max_delay;
	long long max_line;
	int dry_run;
	int check;              /* --check-config */
	int reclaim;            /* --reclaim: dt_reclaim, not dt_settle */
	long long outage_s;     /* DT_STORE_OUTAGE_SECONDS */
	long long drain_s;      /* DT_DRAIN_SECONDS */
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	long long stop_ms;      /* when the run stopped (now_ms()), or 0 */
	const char *default_run;
	const char *where;      /* position of the record being taken */
	struct dt_supabase *sb;
	int dead;               /* a fatal error: store nothing more */
	char dead_why[1100];

	/*
	 * The batch being filled.  A record is encoded as it comes, twice:
	 * its dt_settle element (appended to body, with commas between
	 * them, so a request is a slice of body in brackets) and its
	 * status line (in lines); then it is freed.  So a batch holds text,
	 * not parsed records, and each record is encoded once for the
	 * request and once for the output, as it must be.
	 */
	struct dt_buf body, lines, sids;
	struct slot *slot;      /* batch_size entries */
	size_t n;               /* records in the batch */
	char *run_id;           /* run of the batch */
	long long first_ms;     /* when the first record came */

	/* Status lines not yet written, and what writing them gave. */
	struct dt_buf out;
	int out_status;         /* 0, DT_EXIT_PIPE or DT_EXIT_IOERR */

	struct dt_progress progress;
	char *first_run;        /* for the stage record */
	long long stored, failed, skipped, not_stored, bad, batches;
	long long lost;         /* rows this run no longer held */
	long long unchanged;    /* --reclaim: rows left alone */
	long long released;     /* given back unanalyzed, attempt returned */
	long long outages;      /* outages waited through */
	int status;
	char message[1100];
};

static volatile sig_atomic_t got_signal;

/*
 * The first SIGTERM or SIGINT is only noted (and logged by the loop):
 * the input is still read to its end.  A second one takes the default
 * action, so a person can still end the program by hand.
 */
static void
on_signal(int sig)
{
	if (got_signal != 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		raise(sig);
		return;
	}
	got_signal = sig;
}

static void
catch_signals(void)
{
	/* Reads and writes go on after the handler. */
	dt_cli_catch_signals(on_signal, SA_RESTART);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
worse(struct store *s, int status)
{
	s->status = dt_exit_worse(s->status, status);
}

/*
 * Writes the queued status lines to stdout.  Like dt_emit(): a reader
 * that went away (EPIPE) ends the output quietly, another error is
 * logged once; either way nothing more is written.
 */
static void
out_write(struct store *s)
{
	size_t done = 0;

	while (s->out_status == 0 && done < s->out.len) {
		ssize_t n = write(STDOUT_FILENO, s->out.p + done,
		    s->out.len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EPIPE)
				s->out_status = DT_EXIT_PIPE;
			else {
				dt_error("cannot write standard output: %s",
				    strerror(errno));
				s->out_status = DT_EXIT_IOERR;
			}
			worse(s, s->out_status);
			break;
		}
		done += (size_t)n;
	}
	s->out.len = 0;
}

/* Writes rec as a line of its own, after the queued lines. */
static void
emit(struct store *s, json_t *rec)
{
	out_write(s);
	if (s->out_status != 0)
		return;
	if (dt_emit(rec) < 0)
		worse(s, dt_out_status() != 0 ? dt_out_status() : DT_EXIT_IOERR);
}

/* ", released N" for the closing line when rows were given back. */
static const char *
released_note(const struct store *s)
{
	static char note[48];

	note[0] = '\0';
	if (s->released > 0)
		snprintf(note, sizeof(note), ", released %lld", s->released);
	return note;
}

/* Counts a status. */
static void
count(struct store *s, const char *status)
{
	if (strcmp(status, "stored") == 0)
		s->stored++;
	else if (strcmp(status, "skipped") == 0)
		s->skipped++;
	else if (strcmp(status, "unchanged") == 0)
		s->unchanged++;
	else if (strcmp(status, "released") == 0)
		s->released++;
	else
		s->failed++;
}

/* Writes rec with "store" (a new reference, stolen) and "status" set. */
static void
emit_status(struct store *s, json_t *rec, json_t *store, const char *status)
{
	json_object_set_new(rec, "store", store);
	json_object_set_new(rec, "status", json_string(status));
	count(s, status);
	emit(s, rec);
}

/* A bad input record: say why, keep what it had. */
static void
emit_bad(struct store *s, json_t *rec, const char *why)
{
	if (s->where != NULL)
		dt_warn("%s: %s", s->where, why);
	if (json_object_get(rec, "error") == NULL)
		dt_record_set_error(rec, "bad_record", 0, "%s", why);
	s->bad++;
	worse(s, DT_EXIT_DATAERR);
	emit_status(s, rec, json_pack("{ssss}", "outcome", "bad_record",
	    "message", why), "failed");
}

/*
 * Ends the status line of batch record i with "store" (store_len bytes of
 * JSON text at store) and "status", and queues it.  The queue is written
 * out whenever it grows past 64 KiB, and at the end of every batch.
 */
static void
line_end(struct store *s, size_t i, const char *store, size_t store_len,
    const char *status)
{
	const struct slot *sl = &s->slot[i];
	struct dt_buf *o = &s->out;
	size_t start = o->len;
	int rc = 0;

	count(s, status);
	rc |= dt_buf_put(o, s->lines.p + sl->line, sl->line_len);
	/* A record of nothing but dropped fields is "{" by now. */
	if (sl->line_len > 1)
		rc |= dt_buf_put(o, ",", 1);
	rc |= dt_buf_put(o, "\"store\":", 8);
	rc |= dt_buf_put(o, store, store_len);
	rc |= dt_buf_put(o, ",\"status\":\"", 11);
	rc |= dt_buf_put(o, status, strlen(status));
	rc |= dt_buf_put(o, "\"}\n", 3);
	if (rc != 0) {
		o->len = start;
		dt_error("out of memory: the status line of record %s is lost",
		    s->sids.p + sl->sid);
		worse(s, DT_EXIT_TEMPFAIL);
	}
	if (o->len >= 65536)
		out_write(s);
}

/* Ends batch record i's line as not stored, for the reason why. */
static void
line_not_stored(struct store *s, size_t i, const char *why)
{
	json_t *st = json_pack("{ssss}", "outcome", "not_stored", "message",
	    why);
	char *text = st != NULL ? json_dumps(st, DT_LINE_FLAGS) : NULL;

	s->not_stored++;
	if (text != NULL)
		line_end(s, i, text, strlen(text), "failed");
	else
		line_end(s, i, "null", 4, "failed");
	free(text);
	json_decref(st);
}

/*
 * Checks that rec can be stored: a usable id, and an "analysis", an
 * "error" or a "skip" object.  Returns 0, or -1 with *why set.
 */
static int
storable(json_t *rec, const char **why)
{
	json_t *id;

	if (dt_record_id(rec, &id, why) < 0)
		return -1;
	if (!json_is_object(json_object_get(rec, "error")) &&
	    !json_is_object(json_object_get(rec, "analysis")) &&
	    !json_is_object(json_object_get(rec, "skip"))) {
		*why = "no \"analysis\", \"error\" or \"skip\" object";
		return -1;
	}
	return 0;
}

/* Sets o[key] to v when v is a string, else to the string dflt. */
static int
set_string(json_t *o, const char *key, json_t *v, const char *dflt)
{
	if (json_is_string(v))
		return json_object_set(o, key, v);
	return json_object_set_new(o, key, json_string(dflt));
}

/* Sets o[key] to src[key] when that is a count an integer column holds. */
static int
set_count(json_t *o, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 2147483647)
		return 0;
	return json_object_set(o, key, v);
}

/* Sets item's "analysis" and the fields dt_settle keeps beside it. */
static int
set_analysis(json_t *item, json_t *rec)
{
	json_t *usage = json_object_get(rec, "usage"), *v;
	int rc = 0;

	rc |= json_object_set(item, "analysis", json_object_get(rec,
	    "analysis"));
	if (json_is_string(v = json_object_get(rec, "model")))
		rc |= json_object_set(item, "model", v);
	if (json_is_string(v = json_object_get(rec, "prompt_version")))
		rc |= json_object_set(item, "prompt_version", v);
	rc |= set_count(item, usage, "prompt_tokens");
	rc |= set_count(item, usage, "completion_tokens");
	rc |= set_count(item, usage, "total_tokens");
	rc |= set_count(item, rec, "latency_ms");
	if (json_is_number(v = json_object_get(rec, "cost_usd")) ||
	    json_is_number(v = json_object_get(usage, "cost_usd")))
		rc |= json_object_set(item, "cost_usd", v);
	return rc;
}

/*
 * The dt_settle element of rec (storable), with the source id sid as a
 * string: {"id", then "error":{"kind","message"} (and "retryable" when
 * rec's error has it), or "analysis" with "model", "prompt_version",
 * the token counts out of "usage", "latency_ms" and "cost_usd" where rec
 * has them, or else "skip":{"reason","message"}}.  Returns a new
 * reference, or NULL when out of memory.
 */
static json_t *
settle_item(json_t *rec, const char *sid)
{
	json_t *error = json_object_get(rec, "error");
	json_t *skip = json_object_get(rec, "skip");
	json_t *item = json_object(), *o = NULL, *v;
	int rc = item == NULL ||
	    json_object_set_new(item, "id", json_string(sid));

	if (rc == 0 && json_is_object(error)) {
		rc |= json_object_set_new(item, "error", o = json_object());
		rc |= set_string(o, "kind", json_object_get(error, "kind"),
		    "bad_record");
		rc |= set_string(o, "message", json_object_get(error,
		    "message"), "");
		/* dt_settle parks a record whose error is not retryable. */
		if (json_is_boolean(v = json_object_get(error, "retryable")))
			rc |= json_object_set(o, "retryable", v);
	} else if (rc == 0 && json_is_object(json_object_get(rec,
	    "analysis")))
		rc |= set_analysis(item, rec);
	else if (rc == 0) {
		/* Nothing to analyze. */
		rc |= json_object_set_new(item, "skip", o = json_object());
		rc |= set_string(o, "reason", json_object_get(skip, "reason"),
		    "no_text");
		rc |= set_string(o, "message", json_object_get(skip,
		    "message"), "");
	}
	if (rc != 0) {
		json_decref(item);
		return NULL;
	}
	return item;
}

/*
 * Adds rec (storable, without "text" and "row") to the batch as record
 * s->n: its source id, its dt_settle element and its status line so far
 * (the record without its closing brace).  Returns 0, or -1 when out of
 * memory (the batch is as before).
 */
static int
batch_add(struct store *s, json_t *rec)
{
	struct slot *sl = &s->slot[s->n];
	json_t *id = json_object_get(rec, "id"), *item;
	size_t body0 = s->body.len, lines0 = s->lines.len, sids0 = s->sids.len;
	char num[32];
	const char *sid = num;
	int rc = 0;

	sl->sid = s->sids.len;
	sl->sid_is_str = json_is_string(id);
	if (sl->sid_is_str)
		sid = json_string_value(id);
	else
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(id));
	rc |= dt_buf_put(&s->sids, sid, strlen(sid) + 1);
	sl->line = s->lines.len;
	rc |= dt_buf_put(&s->lines, "{", 1);
	rc |= dt_buf_json(&s->lines, rec, DT_LINE_FLAGS | JSON_EMBED);
	sl->line_len = s->lines.len - sl->line;
	if (s->n > 0)
		rc |= dt_buf_put(&s->body, ",", 1);
	sl->item = s->body.len;
	if ((item = settle_item(rec, sid)) == NULL)
		rc = -1;
	else
		rc |= dt_buf_json(&s->body, item, DT_LINE_FLAGS);
	json_decref(item);
	sl->item_len = s->body.len - sl->item;
	if (rc != 0) {
		s->body.len = body0;
		s->lines.len = lines0;
		s->sids.len = sids0;
		return -1;
	}
	s->n++;
	return 0;
}

static void
batch_reset(struct store *s)
{
	s->n = 0;
	s->body.len = 0;
	s->lines.len = 0;
	s->sids.len = 0;
	free(s->run_id);
	s->run_id = NULL;
	s->first_ms = 0;
}

/*
 * Maps a dt_settle or dt_reclaim outcome to the status line: "stored",
 * "skipped" (nothing to analyze), "released" (not analyzed: an outage, a
 * setup error, the deadline or the budget; the row is back in the queue
 * with its attempt), "unchanged" (--reclaim left the row alone: settled
 * meanwhile, held by a live run, or waiting to be claimed again), else
 * "failed" (lost included: the result was not written).
 */
static const char *
status_of(const char *outcome)
{
	if (strcmp(outcome, "stored") == 0)
		return "stored";
	if (strcmp(outcome, "skipped") == 0)
		return "skipped";
	if (strcmp(outcome, "released") == 0)
		return "released";
	if (strcmp(outcome, "settled") == 0 || strcmp(outcome, "held") == 0 ||
	    strcmp(outcome, "pending") == 0)
		return "unchanged";
	return "failed";
}

/*
 * Says why a record came back "lost", one line per record, and how to
 * store its result anyway.
 */
static void
warn_lost(struct store *s, size_t i)
{
	const char *sid = s->sids.p + s->slot[i].sid;
	int q = s->slot[i].sid_is_str;
	int n = (int)utf8_cut(sid, strlen(sid), 64);

	s->lost++;
	if (s->reclaim)
		dt_warn("record %s%.*s%s: not reclaimed: the id is not in "
		    "dt_results", q ? "\"" : "", n, sid, q ? "\"" : "");
	else
		dt_warn("record %s%.*s%s: lost: run %s no longer holds this "
		    "row (its lease expired and another run took it over, or "
		    "the id is not in dt_results); its result is in this "
		    "run's analyze output, which dt-store --reclaim stores "
		    "once no live run holds the row", q ? "\"" : "", n, sid,
		    q ? "\"" : "", s->run_id);
}

/* FNV-1a, for finding a record by its source id. */
static size_t
hash_id(const char *id)
{
	size_t h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

/*
 * Finds the first record of [from, to) whose source id is id in tab (an
 * open-addressing table of size mask + 1 holding record index + 1, 0 for
 * empty), inserting i when add and it is not there.  Returns the index,
 * or (size_t)-1.
 */
static size_t
id_slot(const struct store *s, size_t *tab, size_t mask, const char *id,
    size_t i, int add)
{
	size_t h;

	for (h = hash_id(id) & mask; tab[h] != 0; h = (h + 1) & mask)
		if (strcmp(s->sids.p + s->slot[tab[h] - 1].sid, id) == 0)
			return tab[h] - 1;
	if (!add)
		return (size_t)-1;
	tab[h] = i + 1;
	return i;
}

/* Writes the status lines of records [from, to) from the reply rows. */
static void
emit_outcomes(struct store *s, size_t from, size_t to, json_t *rows)
{
	struct dt_buf st = {NULL, 0, 0};
	size_t i, j, k, mask = 15, *tab;
	json_t **hit, *row;

	/*
	 * Match the reply to the records by source id, through a table of
	 * the batch's ids: the reply is as long as the batch.
	 */
	while (mask + 1 < 2 * (to - from))
		mask = mask * 2 + 1;
	tab = calloc(mask + 1, sizeof(*tab));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
	hit = calloc(to, sizeof(*hit));
	if (tab == NULL || hit == NULL) {
		for (i = from; i < to; i++)
			line_not_stored(s, i, "out of memory");
		worse(s, DT_EXIT_TEMPFAIL);
		goto out;
	}
	for (i = from; i < to; i++)
		id_slot(s, tab, mask, s->sids.p + s->slot[i].sid, i, 1);
	json_array_foreach(rows, j, row) {
		const char *r = json_string_value(json_object_get(row,
		    "source_id"));

		if (r != NULL && (k = id_slot(s, tab, mask, r, 0, 0)) !=
		    (size_t)-1)
			hit[k] = row;
	}
	for (i = from; i < to; i++) {
		json_t *outcome, *attempts, *o;

		/* An id given twice has one outcome, the first record's. */
		k = id_slot(s, tab, mask, s->sids.p + s->slot[i].sid, i, 0);
		outcome = json_object_get(hit[k], "outcome");
		attempts = json_object_get(hit[k], "attempts");
		if (!json_is_string(outcome)) {
			line_not_stored(s, i, "the server did not report on "
			    "this record");
			worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		st.len = 0;
		o = json_pack("{sOsO}", "outcome", outcome, "attempts",
		    attempts != NULL ? attempts : json_null());
		if (o == NULL || dt_buf_json(&st, o, DT_LINE_FLAGS) < 0) {
			json_decref(o);
			line_not_stored(s, i, "out of memory");
			worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		json_decref(o);
		if (strcmp(json_string_value(outcome), "lost") == 0)
			warn_lost(s, i);
		if (strcmp(status_of(json_string_value(outcome)), "failed") ==
		    0)
			worse(s, DT_EXIT_PARTIAL);
		line_end(s, i, st.p, st.len,
		    status_of(json_string_value(outcome)));
	}
out:
	dt_buf_free(&st);
	free(tab);
	free(hit);
}

/*
 * The request for records [from, to): {"p_run_id":...,"p_results":[...]}
 * around the slice of the body that holds their elements.  Returns a new
 * string (its length in *n), or NULL when out of memory.
 */
static char *
request_body(struct store *s, size_t from, size_t to, size_t *n)
{
	json_t *run = json_string(s->run_id);
	char *head = run != NULL ? json_dumps(run, JSON_ENCODE_ANY) : NULL;
	size_t start = s->slot[from].item;
	size_t slice = s->slot[to - 1].item + s->slot[to - 1].item_len - start;
	char *req = NULL;
	int at;

	json_decref(run);
	if (head == NULL)
		return NULL;
	*n = sizeof("{\"p_run_id\":,\"p_results\":[]}") - 1 + strlen(head) +
	    slice;
	if ((req = malloc(*n + 1)) != NULL) {
		at = snprintf(req, *n + 1, "{\"p_run_id\":%s,\"p_results\":[",
		    head);
		memcpy(req + at, s->body.p + start, slice);
		memcpy(req + at + slice, "]}", 3);
	}
	free(head);
	return req;
}

/*
 * Notes when the run stopped, once: a first SIGTERM or SIGINT, or the
 * stop file (whose age says when it appeared: it may have been there
 * long before an outage made us look).
 */
static void
note_stop(struct store *s)
{
	struct timespec now;
	struct stat st;
	long long age;

	if (s->stop_ms > 0)
		return;
	if (got_signal != 0)
		s->stop_ms = now_ms();
	else if (s->stop_file != NULL && stat(s->stop_file, &st) == 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		age = ((long long)now.tv_sec - (long long)st.st_mtim.tv_sec) *
		    1000 + (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
		s->stop_ms = now_ms() - (age > 0 ? age : 0);
		if (s->stop_ms <= 0)
			s->stop_ms = 1;
	}
}

/*
 * When to give up on an outage that began at start: after
 * DT_STORE_OUTAGE_SECONDS, and no later than half of DT_DRAIN_SECONDS
 * after the run stopped (the other half is for the rest of the pipeline
 * and the report before the entrypoint ends it).
 */
static long long
give_up_at(struct store *s, long long start)
{
	long long until = start + s->outage_s * 1000;

	note_stop(s);
	if (s->stop_ms > 0 && s->stop_ms + s->drain_s * 500 < until)
		until = s->stop_ms + s->drain_s * 500;
	return until;
}

/*
 * Waits through an outage (why: what the last request got): probes
 * Supabase with a call of the same function on no records, after each
 * wait (exponential backoff with full jitter, the shared policy), until
 * it answers (returns 0: send the batch again) or it is time to give up
 * (returns -1).  A stop that comes meanwhile shortens the wait.  Each try
 * logs one line.
 */
static int
outage_wait(struct store *s, const char *path, const char *why)
{
	static const struct dt_http_policy pol = {
		.max_tries = 1, .base_ms = 250, .cap_ms = 5000,
	};
	long long start = now_ms(), until, wait;
	char last[sizeof(((struct dt_sb_result *)0)->message)];
	json_t *probe;
	int n = 0, rc = -1;

	if (give_up_at(s, start) <= start)
		return -1;
	if ((probe = json_pack("{sss[]}", "p_run_id", s->run_id,
	    "p_results")) == NULL)
		return -1;
	s->outages++;
	for (;;) {
		struct dt_sb_result res;
		long long now = now_ms();

		until = give_up_at(s, start);
		if (now >= until) {
			dt_error("Supabase still unavailable after %lld s (%s); "
			    "giving up", (now - start) / 1000, why);
			break;
		}
		wait = dt_http_backoff_ms(&pol, ++n, NULL);
		if (wait > until - now)
			wait = until - now;
		dt_warn("Supabase unavailable (%s); probing again in %lld ms, "
		    "giving up in %lld s", why, wait, (until - now + 999) / 1000);
		/* In slices, so that a stop meanwhile is seen. */
		while (wait > 0) {
			long long slice = wait < 250 ? wait : 250;
			struct timespec ts = {0, (long)slice * 1000000};

			nanosleep(&ts, NULL);
			wait -= slice;
			if (give_up_at(s, start) <= now_ms())
				break;
		}
		if (give_up_at(s, start) <= now_ms())
			continue;
		dt_supabase_call(s->sb, "POST", path, probe, NULL, 0, &res);
		if (res.kind != DT_SB_UNAVAILABLE && res.kind != DT_SB_TIMEOUT) {
			dt_info("Supabase answers again after %lld ms; sending "
			    "the batch again", now_ms() - start);
			dt_sb_result_clear(&res);
			rc = 0;
			break;
		}
		snprintf(last, sizeof(last), "%s", res.message);
		why = last;
		dt_sb_result_clear(&res);
	}
	json_decref(probe);
	return rc;
}

/*
 * Sends records [from, to) of the batch in one request.  On a 400 for
 * more than one record it sends them one by one, so one bad record does
 * not take its batch down with it.  Through an outage it waits and sends
 * them again (outage_wait()).  A request that still fails while the
 * probes get answers is this request's trouble, not an outage (a
 * statement timeout on a large batch, say): its records are sent one by
 * one, and a single one is given up without ending the run's storing.
 */
static void
send_range(struct store *s, size_t from, size_t to)
{
	const char *path = s->reclaim ? "rpc/dt_reclaim" : "rpc/dt_settle";
	struct dt_sb_result res;
	char *req;
	size_t i, n = 0;
	int answered = 0;       /* probes answered while this request failed */

	if (s->dead) {
		for (i = from; i < to; i++)
			line_not_stored(s, i, s->dead_why);
		return;
	}
	if ((req = request_body(s, from, to, &n)) == NULL) {
		memset(&res, 0, sizeof(res));
		res.kind = DT_SB_UNAVAILABLE;
		snprintf(res.message, sizeof(res.message), "out of memory");
	} else {
		for (;;) {
			dt_supabase_call_raw(s->sb, "POST", path, req, n, NULL,
			    1, &res);
			if ((res.kind != DT_SB_UNAVAILABLE &&
			    res.kind != DT_SB_TIMEOUT) || answered == 2 ||
			    outage_wait(s, path, res.message) < 0)
				break;
			answered++;
			dt_sb_result_clear(&res);
		}
	}
	free(req);
	s->batches++;
	if (res.kind == DT_SB_OK && json_is_array(res.body)) {
		emit_outcomes(s, from, to, res.body);
	} else if (res.kind == DT_SB_REJECTED && to - from > 1) {
		dt_warn("a batch of %zu records was rejected (%s); sending "
		    "them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			send_range(s, i, i + 1);
	} else if (answered == 2 && to - from > 1) {
		dt_warn("a batch of %zu records failed (%s) while Supabase "
		    "answers; sending them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			send_range(s, i, i + 1);
	} else if (answered == 2) {
		const char *sid = s->sids.p + s->slot[from].sid;
		char why[1200];

		snprintf(why, sizeof(why), "Supabase answers, but not to this "
		    "record: %s", res.message);
		dt_warn("record %s%.*s%s: %s; it stays leased and comes back "
		    "after the lease", s->slot[from].sid_is_str ? "\"" : "",
		    (int)utf8_cut(sid, strlen(sid), 64), sid,
		    s->slot[from].sid_is_str ? "\"" : "", why);
		worse(s, dt_sb_exit(res.kind));
		line_not_stored(s, from, why);
	} else if (res.kind == DT_SB_REJECTED) {
		const char *sid = s->sids.p + s->slot[from].sid;
		char why[1200];

		snprintf(why, sizeof(why), "Supabase rejected it: %s",
		    res.message);
		/* A long id is quoted in part, cut between characters. */
		dt_warn("record %s%.*s%s: %s", s->slot[from].sid_is_str ?
		    "\"" : "", (int)utf8_cut(sid, strlen(sid), 64), sid,
		    s->slot[from].sid_is_str ? "\"" : "", why);
		worse(s, DT_EXIT_DATAERR);
		line_not_stored(s, from, why);
	} else {
		/* Unavailable, wrong key or table, or a bad reply: stop. */
		s->dead = 1;
		snprintf(s->dead_why, sizeof(s->dead_why), "Supabase %s: %s",
		    res.kind == DT_SB_CONFIG ? "refused the request" :
		    "unavailable", res.message);
		snprintf(s->message, sizeof(s->message), "%s", s->dead_why);
		dt_error("%s; the records not stored stay leased and come "
		    "back after the lease expires", s->dead_why);
		worse(s, res.kind == DT_SB_BADREPLY ? DT_EXIT_TEMPFAIL :
		    dt_sb_exit(res.kind));
		for (i = from; i < to; i++)
			line_not_stored(s, i, s->dead_why);
	}
	dt_sb_result_clear(&res);
}

/* --dry-run: each record's line says what would have been sent. */
static void
dry_run(struct store *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		json_t *would = json_loadb(s->body.p + s->slot[i].item,
		    s->slot[i].item_len, JSON_ALLOW_NUL, NULL);
		json_t *st = json_pack("{sssssO}", "outcome", "dry_run",
		    "run_id", s->run_id, "would",
		    would != NULL ? would : json_null());
		char *text = st != NULL ? json_dumps(st, DT_LINE_FLAGS) : NULL;

		if (text != NULL)
			line_end(s, i, text, strlen(text), "unchanged");
		else
			line_not_stored(s, i, "out of memory");
		free(text);
		json_decref(st);
		json_decref(would);
	}
}

/* Sends the batch, writes its status lines and empties it. */
static void
flush(struct store *s)
{
	if (s->n == 0)
		return;
	if (s->dry_run)
		dry_run(s);
	else
		send_range(s, 0, s->n);
	out_write(s);
	batch_reset(s);
}

/* Takes one input record into the batch (or out at once when bad). */
static void
take(struct store *s, json_t *rec)
{
	const char *why = NULL, *run;

	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		/*
		 * Another stage's report: pass it through as it is, after
		 * what came before it, so the order stays.
		 */
		flush(s);
		emit(s, rec);
		return;
	}
	dt_progress_add(&s->progress, rec);
	if (storable(rec, &why) < 0) {
		emit_bad(s, rec, why);
		return;
	}
	run = json_string_value(json_object_get(rec, "run_id"));
	if (run == NULL || *run == '\0')
		run = s->default_run;
	if (run == NULL) {
		emit_bad(s, rec, "no \"run_id\" (and no --run-id)");
		return;
	}
	if (s->first_run == NULL)
		s->first_run = strdup(run);
	if (s->run_id != NULL && strcmp(s->run_id, run) != 0)
		flush(s);
	if (s->run_id == NULL) {
		s->run_id = strdup(run);
		s->first_ms = now_ms();
	}
	/*
	 * Status lines carry no message text: it is private and large.
	 * "store" and "status" are dt-store's own, written last.
	 */
	json_object_del(rec, "text");
	json_object_del(rec, "row");
	json_object_del(rec, "store");
	json_object_del(rec, "status");
	if (batch_add(s, rec) < 0) {
		flush(s);
		dt_error("out of memory");
		worse(s, DT_EXIT_TEMPFAIL);
		s->not_stored++;
		emit_status(s, rec, json_pack("{ssss}", "outcome",
		    "not_stored", "message", "out of memory"), "failed");
		return;
	}
	if ((long long)s->n >= s->batch_size ||
	    s->body.len >= MAX_BATCH_BYTES || s->lines.len >= MAX_BATCH_BYTES)
		flush(s);
}

/*
 * Reads the environment, then the flags, and checks them all, logging
 * one line per problem.  Returns 0 or an exit status: DT_EXIT_USAGE for
 * a bad command line, DT_EXIT_CONFIG for bad settings (with
 * --check-config every bad value, flags included, and the Supabase
 * settings too).
 */
static int
configure(struct store *s, int argc, char **argv)
{
	int c, nconf = 0, nusage = 0;

	s->default_run = dt_env("DT_RUN_ID", NULL);
	s->stop_file = dt_env("DT_STOP_FILE", NULL);
	s->batch_size = 100;
	s->max_delay = 1000;
	s->max_line = DT_NDJSON_MAX_LINE_DEFAULT;
	s->outage_s = 3600;
	s->drain_s = 60;
	if (dt_env_ll("DT_STORE_BATCH", 100, 1, 1000, &s->batch_size) < 0)
		nconf++;
	if (dt_env_ll("DT_STORE_MAX_DELAY_MS", 1000, 0, 3600000,
	    &s->max_delay) < 0)
		nconf++;
	if (dt_env_ll("DT_MAX_LINE", DT_NDJSON_MAX_LINE_DEFAULT, 1024,
	    1073741824, &s->max_line) < 0)
		nconf++;
	if (dt_env_ll("DT_STORE_OUTAGE_SECONDS", 3600, 0, 86400,
	    &s->outage_s) < 0)
		nconf++;
	if (dt_env_ll("DT_DRAIN_SECONDS", 60, 0, 3600, &s->drain_s) < 0)
		nconf++;
	nconf += dt_progress_init(&s->progress);
	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((c = getopt_long(argc, argv, "b:d:hL:nqRr:vV", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'b':
			if (dt_parse_ll("--batch-size", optarg, 1, 1000,
			    &s->batch_size) < 0)
				nusage++;
			break;
		case 'd':
			if (dt_parse_ll("--max-delay", optarg, 0, 3600000,
			    &s->max_delay) < 0)
				nusage++;
			break;
		case 'h':
			exit(dt_cli_help(usage_text));
		case 'L':
			if (dt_parse_ll("--max-line", optarg, 1024, 1073741824,
			    &s->max_line) < 0)
				nusage++;
			break;
		case 'n':
			s->dry_run = 1;
			break;
		case 'q':
			dt_log_adjust(-1);
			break;
		case 'R':
			s->reclaim = 1;
			break;
		case 'r':
			s->default_run = optarg;
			break;
		case 'v':
			dt_log_adjust(1);
			break;
		case 'V':
			dt_cli_version();
			exit(dt_cli_close_stdout(DT_EXIT_OK));
		case OPT_CHECK_CONFIG:
			s->check = 1;
			break;
		default:
			return dt_cli_usage_error(NULL);
		}
	}
	if (s->default_run != NULL && (*s->default_run == '\0' ||
	    strlen(s->default_run) > RUN_ID_MAX)) {
		dt_error("DT_RUN_ID/--run-id: must be 1 to %d characters",
		    RUN_ID_MAX);
		nconf++;
	}
	if (s->check) {
		/* Input files are input, not configuration: not opened. */
		if (!s->dry_run)
			nconf += dt_supabase_check();
		return nconf + nusage > 0 ? DT_EXIT_CONFIG : 0;
	}
	if (nconf > 0)
		return DT_EXIT_CONFIG;
	return nusage > 0 ? DT_EXIT_USAGE : 0;
}

/* Reads, batches and stores until the input ends. */
static void
loop(struct store *s, struct dt_reader *r)
{
	int noted = 0;

	for (;;) {
		json_t *rec = NULL;
		long long pw;
		int rc;

		/* Waits for input end early when a progress line is due. */
		dt_progress_tick(&s->progress, s->stored, s->failed,
		    s->skipped);
		pw = dt_progress_wait_ms(&s->progress);
		if (s->first_ms > 0) {
			long long left = s->first_ms + s->max_delay - now_ms();

			if (left <= 0) {
				flush(s);
				continue;
			}
			if (dt_reader_wait(r, (int)(pw >= 0 && pw < left ? pw :
			    left)) == 0) {
				if (s->first_ms + s->max_delay <= now_ms())
					flush(s);
				continue;
			}
		} else if (pw >= 0 && dt_reader_wait(r, (int)pw) == 0)
			continue;
		if (got_signal != 0 && !noted) {
			noted = 1;
			dt_warn("%s: storing the rest of the input before "
			    "exiting", got_signal == SIGINT ? "SIGINT" :
			    "SIGTERM");
		}
		rc = dt_reader_next(r, &rec);
		if (rc == DT_NDJSON_EOF)
			break;
		if (rc == DT_NDJSON_ERROR) {
			worse(s, DT_EXIT_DATAERR);
			continue;
		}
		if (rc == DT_NDJSON_BAD) {
			json_t *bad = dt_record_bad_line(dt_reader_where(r),
			    dt_reader_error(r), dt_reader_excerpt(r));

			/* The reader has logged it already. */
			s->where = NULL;
			if (bad != NULL)
				emit_bad(s, bad, dt_reader_error(r));
			json_decref(bad);
			continue;
		}
		s->where = dt_reader_where(r);
		take(s, rec);
		s->where = NULL;
		json_decref(rec);
	}
	flush(s);
}

static void
emit_stage(struct store *s)
{
	json_t *rec = json_pack("{sssosisos{sIsIsIsIsIsIsIsIsIsI}sb}", "stage",
	    "dt-store", "run_id", s->first_run != NULL ?
	    json_string(s->first_run) : json_null(), "status", s->status,
	    "message", s->message[0] != '\0' ? json_string(s->message) :
	    json_null(), "counts",
	    "stored", (json_int_t)s->stored, "released",
	    (json_int_t)s->released, "failed", (json_int_t)s->failed,
	    "skipped", (json_int_t)s->skipped,
	    "unchanged", (json_int_t)s->unchanged,
	    "lost", (json_int_t)s->lost,
	    "not_stored", (json_int_t)s->not_stored,
	    "bad", (json_int_t)s->bad, "batches", (json_int_t)s->batches,
	    "outages", (json_int_t)s->outages,
	    "interrupted", 0);

	if (rec != NULL)
		emit(s, rec);
	json_decref(rec);
}

int
main(int argc, char **argv)
{
	struct store s;
	struct dt_reader *r = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	if (dt_log_init("dt-store") < 0 || dt_watch_start() < 0)
		return DT_EXIT_CONFIG;
	dt_out_init();
	dt_config_register_secrets();
	if ((rc = configure(&s, argc, argv)) != 0 || s.check)
		return rc;
	/*
	 * No dt_http_set_stop_flag(): a signal must not cut the retries of
	 * a batch short, or its records would not be stored.
	 */
	catch_signals();
	s.slot = calloc((size_t)s.batch_size, sizeof(*s.slot));
	if (!s.dry_run && (s.sb = dt_supabase_new()) == NULL) {
		s.dead = 1;
		snprintf(s.dead_why, sizeof(s.dead_why),
		    "bad Supabase configuration (see the log)");
		snprintf(s.message, sizeof(s.message), "%s", s.dead_why);
		worse(&s, DT_EXIT_CONFIG);
	}
	r = dt_reader_new(argv + optind, argc - optind, (size_t)s.max_line);
	if (r == NULL || s.slot == NULL) {
		dt_error("out of memory");
		return DT_EXIT_TEMPFAIL;
	}
	loop(&s, r);
	if (dt_reader_nbad(r) > 0 || dt_reader_nfail(r) > 0)
		worse(&s, DT_EXIT_DATAERR);
	if (s.bad > 0 && s.message[0] == '\0')
		snprintf(s.message, sizeof(s.message), "%lld bad input records",
		    s.bad);
	if (s.status == DT_EXIT_PARTIAL && s.message[0] == '\0')
		snprintf(s.message, sizeof(s.message), "%lld records failed",
		    s.failed);
	if (s.out_status == 0 && dt_out_status() != DT_EXIT_PIPE)
		emit_stage(&s);
	if (s.reclaim)
		dt_info("reclaimed: stored %lld, failed %lld, skipped %lld, "
		    "unchanged %lld in %lld requests", s.stored, s.failed,
		    s.skipped, s.unchanged, s.batches);
	else
		dt_info("stored %lld, failed %lld, skipped %lld%s in %lld "
		    "requests", s.stored, s.failed, s.skipped, released_note(&s),
		    s.batches);
	dt_reader_free(r);
	dt_supabase_free(s.sb);
	dt_buf_free(&s.body);
	dt_buf_free(&s.lines);
	dt_buf_free(&s.sids);
	dt_buf_free(&s.out);
	free(s.slot);
	free(s.run_id);
	free(s.first_run);
	return dt_cli_close_stdout(s.status);
}
