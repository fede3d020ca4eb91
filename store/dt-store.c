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
 * was analyzed (and paid for) already.  A pipeline is stopped from its
 * start (dt-fetch claims no more), and its end drains.  A second signal
 * ends the program at once.  --check-config checks the configuration
 * and exits.  See docs/supabase.md.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "record.h"
#include "supabase.h"

static const char usage_text[] =
    "usage: dt-store [-hnqvV] [-b size] [-d ms] [-L bytes] [-r run-id]\n"
    "                [file ...]\n"
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
    "  -r, --run-id id      run id for records that carry none (DT_RUN_ID)\n"
    "  -v, --verbose        log more (repeatable)\n"
    "  -V, --version        print the version and exit\n"
    "\n"
    "Environment: SUPABASE_URL, SUPABASE_KEY or SUPABASE_KEY_FILE,\n"
    "TIMEOUT_SECONDS, DT_SUPABASE_TRIES, DT_SUPABASE_BACKOFF_MS.  SIGTERM\n"
    "and SIGINT: the rest of the input is still read and stored (a second\n"
    "signal ends the program at once).  Exit status: 0 all stored, 1 some\n"
    "records failed, 64 usage, 65 bad input, 69 Supabase unavailable\n"
    "(records not stored stay leased and come back), 74 output error,\n"
    "78 bad configuration.\n";

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
	{"run-id", required_argument, NULL, 'r'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

/* Keeps a batch's request small even when analyses are large. */
#define MAX_BATCH_BYTES (4L * 1024 * 1024)

struct store {
	long long batch_size;
	long long max_delay;
	long long max_line;
	int dry_run;
	int check;              /* --check-config */
	const char *default_run;
	const char *where;      /* position of the record being taken */
	struct dt_supabase *sb;
	int dead;               /* a fatal error: store nothing more */
	char dead_why[1100];

	/* The batch being filled. */
	json_t *recs;           /* the records, in input order */
	json_t *items;          /* the dt_settle elements */
	char *run_id;           /* run of the batch */
	long bytes;
	long long first_ms;     /* when the first record came */

	char *first_run;        /* for the stage record */
	long long stored, failed, skipped, not_stored, bad, batches;
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
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* Reads and writes go on after the handler. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
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

/* Writes rec with "status" set; counts it. */
static void
emit_status(struct store *s, json_t *rec, const char *status)
{
	json_object_set_new(rec, "status", json_string(status));
	if (strcmp(status, "stored") == 0)
		s->stored++;
	else if (strcmp(status, "skipped") == 0)
		s->skipped++;
	else
		s->failed++;
	if (dt_emit(rec) < 0)
		worse(s, dt_out_status() != 0 ? dt_out_status() : DT_EXIT_IOERR);
}

/* Marks rec as not stored (why) and writes it. */
static void
emit_not_stored(struct store *s, json_t *rec, const char *why)
{
	json_object_set_new(rec, "store", json_pack("{ssss}", "outcome",
	    "not_stored", "message", why));
	s->not_stored++;
	emit_status(s, rec, "failed");
}

/* A bad input record: say why, keep what it had. */
static void
emit_bad(struct store *s, json_t *rec, const char *why)
{
	if (s->where != NULL)
		dt_warn("%s: %s", s->where, why);
	if (json_object_get(rec, "error") == NULL)
		dt_record_set_error(rec, "bad_record", 0, "%s", why);
	json_object_set_new(rec, "store", json_pack("{ssss}", "outcome",
	    "bad_record", "message", why));
	s->bad++;
	worse(s, DT_EXIT_DATAERR);
	emit_status(s, rec, "failed");
}

/* The id as dt_settle wants it: the text form of the source id. */
static int
id_text(json_t *id, char *buf, size_t len)
{
	if (json_is_integer(id))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
	else if (json_is_string(id))
		snprintf(buf, len, "%s", json_string_value(id));
	else
		return -1;
	return 0;
}

/* Copies an integer field from src[key] to dst[as] when it is one. */
static void
copy_int(json_t *dst, const char *as, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 2147483647)
		json_object_set(dst, as, v);
}

/*
 * Builds the dt_settle element for rec.  Returns a new reference, or NULL
 * with *why set when the record cannot be stored.
 */
static json_t *
settle_item(json_t *rec, const char **why)
{
	json_t *id, *analysis, *error, *item, *usage, *v;
	char idbuf[256];

	if (dt_record_id(rec, &id, why) < 0)
		return NULL;
	id_text(id, idbuf, sizeof(idbuf));
	analysis = json_object_get(rec, "analysis");
	error = json_object_get(rec, "error");
	if (!json_is_object(error) && !json_is_object(analysis)) {
		*why = "neither an \"analysis\" nor an \"error\" object";
		return NULL;
	}
	if ((item = json_pack("{ss}", "id", idbuf)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (json_is_object(error)) {
		const char *kind = json_string_value(json_object_get(error, "kind"));
		const char *msg = json_string_value(json_object_get(error, "message"));

		json_object_set_new(item, "error", json_pack("{ssss}", "kind",
		    kind != NULL ? kind : "bad_record", "message",
		    msg != NULL ? msg : ""));
		return item;
	}
	json_object_set(item, "analysis", analysis);
	if (json_is_string(v = json_object_get(rec, "model")))
		json_object_set(item, "model", v);
	if (json_is_string(v = json_object_get(rec, "prompt_version")))
		json_object_set(item, "prompt_version", v);
	usage = json_object_get(rec, "usage");
	copy_int(item, "prompt_tokens", usage, "prompt_tokens");
	copy_int(item, "completion_tokens", usage, "completion_tokens");
	copy_int(item, "total_tokens", usage, "total_tokens");
	copy_int(item, "latency_ms", rec, "latency_ms");
	if (json_is_number(v = json_object_get(rec, "cost_usd")) ||
	    json_is_number(v = json_object_get(usage, "cost_usd")))
		json_object_set(item, "cost_usd", v);
	return item;
}

static void
batch_reset(struct store *s)
{
	json_array_clear(s->recs);
	json_array_clear(s->items);
	free(s->run_id);
	s->run_id = NULL;
	s->bytes = 0;
	s->first_ms = 0;
}

/* Maps a dt_settle outcome to the status line. */
static const char *
status_of(const char *outcome)
{
	if (strcmp(outcome, "stored") == 0)
		return "stored";
	if (strcmp(outcome, "lost") == 0)
		return "skipped";
	return "failed";
}

/* Writes the status lines of records [from, to) from the reply rows. */
static void
emit_outcomes(struct store *s, size_t from, size_t to, json_t *rows)
{
	json_t *byid = json_object(), *row;
	size_t i, j;

	/* Index the reply by source id: one lookup per record. */
	json_array_foreach(rows, j, row) {
		const char *r = json_string_value(json_object_get(row,
		    "source_id"));

		if (r != NULL && byid != NULL)
			json_object_set(byid, r, row);
	}
	for (i = from; i < to; i++) {
		json_t *rec = json_array_get(s->recs, i);
		const char *sid = json_string_value(json_object_get(
		    json_array_get(s->items, i), "id"));
		json_t *hit = sid != NULL ? json_object_get(byid, sid) : NULL;
		const char *outcome;

		outcome = json_string_value(json_object_get(hit, "outcome"));
		if (outcome == NULL) {
			emit_not_stored(s, rec, "the server did not report "
			    "on this record");
			worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		json_object_set_new(rec, "store", json_pack("{sssO}",
		    "outcome", outcome, "attempts",
		    json_object_get(hit, "attempts")));
		if (strcmp(outcome, "stored") != 0)
			worse(s, DT_EXIT_PARTIAL);
		emit_status(s, rec, status_of(outcome));
	}
	json_decref(byid);
}

/*
 * Sends records [from, to) of the batch in one request.  On a 400 for
 * more than one record it sends them one by one, so one bad record does
 * not take its batch down with it.
 */
static void
send_range(struct store *s, size_t from, size_t to)
{
	struct dt_sb_result res;
	json_t *items, *args;
	size_t i;

	if (s->dead) {
		for (i = from; i < to; i++)
			emit_not_stored(s, json_array_get(s->recs, i), s->dead_why);
		return;
	}
	items = json_array();
	for (i = from; i < to; i++)
		json_array_append(items, json_array_get(s->items, i));
	args = json_pack("{sssO}", "p_run_id", s->run_id, "p_results", items);
	json_decref(items);
	dt_supabase_call(s->sb, "POST", "rpc/dt_settle", args, NULL, 1, &res);
	json_decref(args);
	s->batches++;
	if (res.kind == DT_SB_OK && json_is_array(res.body)) {
		emit_outcomes(s, from, to, res.body);
	} else if (res.kind == DT_SB_REJECTED && to - from > 1) {
		dt_warn("a batch of %zu records was rejected (%s); sending "
		    "them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			send_range(s, i, i + 1);
	} else if (res.kind == DT_SB_REJECTED) {
		char why[1200];
		char idb[64];

		dt_record_id_str(json_object_get(json_array_get(s->recs, from),
		    "id"), idb, sizeof(idb));
		snprintf(why, sizeof(why), "Supabase rejected it: %s",
		    res.message);
		dt_warn("record %s: %s", idb, why);
		worse(s, DT_EXIT_DATAERR);
		emit_not_stored(s, json_array_get(s->recs, from), why);
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
			emit_not_stored(s, json_array_get(s->recs, i), s->dead_why);
	}
	dt_sb_result_clear(&res);
}

static void
flush(struct store *s)
{
	size_t n = json_array_size(s->recs), i;

	if (n == 0)
		return;
	if (s->dry_run) {
		for (i = 0; i < n; i++) {
			json_t *rec = json_array_get(s->recs, i);

			json_object_set_new(rec, "store", json_pack("{sssssO}",
			    "outcome", "dry_run", "run_id", s->run_id, "would",
			    json_array_get(s->items, i)));
			emit_status(s, rec, "skipped");
		}
	} else
		send_range(s, 0, n);
	batch_reset(s);
}

/* Takes one input record into the batch (or out at once when bad). */
static void
take(struct store *s, json_t *rec)
{
	const char *why = NULL, *run;
	json_t *item;
	char *dump;

	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		/*
		 * Another stage's report: pass it through as it is, after
		 * what came before it, so the order stays.
		 */
		flush(s);
		if (dt_emit(rec) < 0)
			worse(s, dt_out_status());
		return;
	}
	if ((item = settle_item(rec, &why)) == NULL) {
		emit_bad(s, rec, why);
		return;
	}
	run = json_string_value(json_object_get(rec, "run_id"));
	if (run == NULL || *run == '\0')
		run = s->default_run;
	if (run == NULL) {
		json_decref(item);
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
	/* Status lines carry no message text: it is private and large. */
	json_object_del(rec, "text");
	json_object_del(rec, "row");
	if ((dump = json_dumps(item, JSON_COMPACT)) != NULL) {
		s->bytes += (long)strlen(dump);
		free(dump);
	}
	json_array_append(s->recs, rec);
	json_array_append_new(s->items, item);
	if ((long long)json_array_size(s->recs) >= s->batch_size ||
	    s->bytes >= MAX_BATCH_BYTES)
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
	s->batch_size = 100;
	s->max_delay = 1000;
	s->max_line = DT_NDJSON_MAX_LINE_DEFAULT;
	if (dt_env_ll("DT_STORE_BATCH", 100, 1, 1000, &s->batch_size) < 0)
		nconf++;
	if (dt_env_ll("DT_STORE_MAX_DELAY_MS", 1000, 0, 3600000,
	    &s->max_delay) < 0)
		nconf++;
	if (dt_env_ll("DT_MAX_LINE", DT_NDJSON_MAX_LINE_DEFAULT, 1024,
	    1073741824, &s->max_line) < 0)
		nconf++;
	while ((c = getopt_long(argc, argv, "b:d:hL:nqr:vV", longopts,
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
		int rc;

		if (s->first_ms > 0) {
			long long left = s->first_ms + s->max_delay - now_ms();

			if (left <= 0 || dt_reader_wait(r, (int)left) == 0) {
				flush(s);
				continue;
			}
		}
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
	json_t *rec = json_pack("{sssosisos{sIsIsIsIsIsI}sb}", "stage",
	    "dt-store", "run_id", s->first_run != NULL ?
	    json_string(s->first_run) : json_null(), "status", s->status,
	    "message", s->message[0] != '\0' ? json_string(s->message) :
	    json_null(), "counts",
	    "stored", (json_int_t)s->stored, "failed", (json_int_t)s->failed,
	    "skipped", (json_int_t)s->skipped,
	    "not_stored", (json_int_t)s->not_stored,
	    "bad", (json_int_t)s->bad, "batches", (json_int_t)s->batches,
	    "interrupted", 0);

	if (rec != NULL && dt_emit(rec) < 0)
		worse(s, dt_out_status());
	json_decref(rec);
}

int
main(int argc, char **argv)
{
	struct store s;
	struct dt_reader *r = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	if (dt_log_init("dt-store") < 0)
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
	s.recs = json_array();
	s.items = json_array();
	if (!s.dry_run && (s.sb = dt_supabase_new()) == NULL) {
		s.dead = 1;
		snprintf(s.dead_why, sizeof(s.dead_why),
		    "bad Supabase configuration (see the log)");
		snprintf(s.message, sizeof(s.message), "%s", s.dead_why);
		worse(&s, DT_EXIT_CONFIG);
	}
	r = dt_reader_new(argv + optind, argc - optind, (size_t)s.max_line);
	if (r == NULL || s.recs == NULL || s.items == NULL) {
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
	if (dt_out_status() != DT_EXIT_PIPE)
		emit_stage(&s);
	dt_info("stored %lld, failed %lld, skipped %lld in %lld requests",
	    s.stored, s.failed, s.skipped, s.batches);
	dt_reader_free(r);
	dt_supabase_free(s.sb);
	json_decref(s.recs);
	json_decref(s.items);
	free(s.run_id);
	free(s.first_run);
	return dt_cli_close_stdout(s.status);
}
