/*
 * dt-fetch: claims unanalyzed rows of the bot's table through Supabase's
 * data API and writes them as NDJSON source records.
 *
 * --claim leases batches through the dt_claim function until the per-run
 * cap is reached or nothing is left, writing each batch as soon as it
 * arrives.  --peek reads what a claim would get without leasing anything.
 * --requeue returns parked rows to the queue (dt_requeue) and says how
 * many.
 * The last line is always the stage report record, also when Supabase
 * cannot be reached.  SIGTERM, SIGINT or the stop file (DT_STOP_FILE)
 * end claiming after the current batch.  --check-config checks the
 * configuration and exits.  See docs/supabase.md.
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
#include "preflight.h"
#include "progress.h"
#include "supabase.h"
#include "utf8.h"
#include "watch.h"

#define RUN_ID_MAX 200

/* How dt_emit() encodes a record; a line's size is measured the same way. */
#define LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* DT_FETCH_MAX_TEXT_BYTES and DT_MAX_LINE when not set. */
#define DEFAULT_MAX_TEXT 65536
#define DEFAULT_MAX_LINE 1048576

/* The long-only options. */
#define OPT_CHECK_CONFIG 256
#define OPT_PREFLIGHT 257
#define OPT_BACKLOG 258

/* Rows --backlog reads (as --peek would) to learn the texts' sizes. */
#define SAMPLE_ROWS 200

static const char usage_text[] =
    "usage: dt-fetch -c | -p [-hnqvV] [-a attempts] [-b size] [-C columns]\n"
    "                [-i column] [-l seconds] [-m count] [-r run-id]\n"
    "                [-t table] [-x column]\n"
    "       dt-fetch -R [-nqv] [kind]\n"
    "       dt-fetch --check-config [-c | -p] [-n] [option ...]\n"
    "       dt-fetch --preflight | --backlog [option ...]\n"
    "\n"
    "Claims unanalyzed rows of the source table through Supabase's data API\n"
    "and writes one NDJSON source record per row, then a stage record.\n"
    "--requeue returns parked rows (status failed: all, or those whose\n"
    "last_error.kind is kind) to pending with their attempts reset, and\n"
    "prints how many on one line; with -n it only counts them.\n"
    "\n"
    "      --backlog          change nothing: print one JSON object with\n"
    "                         dt_backlog's counts, the sizes of the first\n"
    "                         texts a claim would take, and the batch\n"
    "                         limits (for dt-entrypoint --dry-run)\n"
    "  -a, --max-attempts n   record-specific failures before a row is parked\n"
    "                         as failed (DT_MAX_ATTEMPTS, 3)\n"
    "  -b, --batch-size n     rows per claim, at most 1000 (BATCH_SIZE, 100)\n"
    "  -C, --columns list     more source columns for \"row\", comma-separated\n"
    "                         (DT_SOURCE_COLUMNS)\n"
    "  -c, --claim            lease rows to this run (the CronJob's mode)\n"
    "      --check-config     check the environment and options, read the\n"
    "                         key file, connect to nothing; print nothing\n"
    "                         and exit 0 when valid, else one line per\n"
    "                         problem and exit 78\n"
    "  -h, --help             print this help and exit\n"
    "  -i, --id-column name   the source id column (DT_SOURCE_ID, id)\n"
    "  -l, --lease-seconds n  how long a claim holds its rows\n"
    "                         (DT_LEASE_SECONDS, 900)\n"
    "  -m, --max-records n    at most n rows this run, 0 for no cap\n"
    "                         (DT_MAX_RECORDS, 10000)\n"
    "  -n, --dry-run          print the first request instead of sending it\n"
    "  -p, --peek             read what a claim would get; change nothing\n"
    "      --preflight        change nothing: check that dt's functions\n"
    "                         exist (the migrations are applied), that the\n"
    "                         key is a secret (service) key and that the\n"
    "                         source table and columns can be read; print\n"
    "                         one line, \"supabase: ready: ...\" with the\n"
    "                         backlog or \"supabase: not ready: ...\" naming\n"
    "                         what to fix; exit 0, 78 or 69 (unreachable)\n"
    "  -q, --quiet            log less (repeatable)\n"
    "  -R, --requeue [kind]   return parked rows to the queue (below)\n"
    "  -r, --run-id id        this run's id (DT_RUN_ID; default generated)\n"
    "  -t, --table name       the source table (DT_SOURCE_TABLE, messages)\n"
    "  -v, --verbose          log more (repeatable)\n"
    "  -V, --version          print the version and exit\n"
    "  -x, --text-column name the message text column (DT_SOURCE_TEXT, text)\n"
    "\n"
    "Environment: SUPABASE_URL, SUPABASE_KEY or SUPABASE_KEY_FILE (the\n"
    "service role key), TIMEOUT_SECONDS, DT_SUPABASE_TRIES,\n"
    "DT_SUPABASE_BACKOFF_MS; DT_FETCH_MAX_TEXT_BYTES (65536): longer texts\n"
    "are cut and marked \"text_cut\"; no line is longer than half of\n"
    "DT_MAX_LINE (1048576).  With DT_STATE_DIR (dt-entrypoint sets it),\n"
    "--claim keeps the count of rows claimed in DT_STATE_DIR/fetch.claimed\n"
    "for dt-store's progress lines.  SIGTERM, SIGINT, or a file appearing at the\n"
    "path in DT_STOP_FILE (checked before each claim): no more claims, the\n"
    "rows already claimed are written, exit 75.  Exit status: 0 done,\n"
    "64 usage, 69 Supabase unavailable, 74 output error, 75 interrupted,\n"
    "78 bad configuration (URL, key, table, column or function).\n";

static const struct option longopts[] = {
	{"max-attempts", required_argument, NULL, 'a'},
	{"batch-size", required_argument, NULL, 'b'},
	{"columns", required_argument, NULL, 'C'},
	{"backlog", no_argument, NULL, OPT_BACKLOG},
	{"claim", no_argument, NULL, 'c'},
	{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
	{"help", no_argument, NULL, 'h'},
	{"id-column", required_argument, NULL, 'i'},
	{"lease-seconds", required_argument, NULL, 'l'},
	{"max-records", required_argument, NULL, 'm'},
	{"dry-run", no_argument, NULL, 'n'},
	{"peek", no_argument, NULL, 'p'},
	{"preflight", no_argument, NULL, OPT_PREFLIGHT},
	{"quiet", no_argument, NULL, 'q'},
	{"requeue", no_argument, NULL, 'R'},
	{"run-id", required_argument, NULL, 'r'},
	{"table", required_argument, NULL, 't'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{"text-column", required_argument, NULL, 'x'},
	{NULL, 0, NULL, 0}
};

struct fetch {
	int mode;               /* 'c', 'p', 'R' (--requeue), OPT_PREFLIGHT
				 * or OPT_BACKLOG */
	const char *kind;       /* --requeue's kind, or NULL for all */
	int dry_run;
	int check;              /* --check-config */
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	long long batch;
	long long max_records;
	long long lease;
	long long attempts;
	long long max_text;     /* DT_FETCH_MAX_TEXT_BYTES */
	long long max_line;     /* DT_MAX_LINE */
	const char *table;
	const char *id_col;
	const char *text_col;
	json_t *columns;        /* array of strings or NULL */
	char run_id[RUN_ID_MAX + 1];

	/* What happened, for the stage record. */
	long long emitted;
	long long batches;
	long long cut;          /* texts cut to fit */
	int status;
	char message[1100];
};

static volatile int stop_flag;

/*
 * The stop file asks for what SIGTERM asks for.  It exists because in a
 * Kubernetes pod only PID 1 (entrypoint.sh) gets the signal, and the
 * fan-out between it and dt-fetch must not be signalled.
 */
static int
stop_requested(const struct fetch *f)
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

static void
catch_signals(void)
{
	dt_cli_catch_signals(on_signal, 0);
	dt_http_set_stop_flag(&stop_flag);
}

/* A generated run id: UTC time and 32 random bits, e.g. 20261128T120000Z-1a2b3c4d. */
static void
make_run_id(char *buf, size_t len)
{
	unsigned int r = (unsigned int)time(NULL) ^ ((unsigned int)getpid() << 16);
	struct tm tm;
	time_t now = time(NULL);
	FILE *f;

	if ((f = fopen("/dev/urandom", "rb")) != NULL) {
		if (fread(&r, sizeof(r), 1, f) != 1)
			r ^= (unsigned int)clock();
		fclose(f);
	}
	gmtime_r(&now, &tm);
	snprintf(buf, len, "%04d%02d%02dT%02d%02d%02dZ-%08x",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, r);
}

/*
 * Splits "a,b" into a JSON array of names; what names the setting in the
 * error.  Returns 0 or -1 after logging.
 */
static int
parse_columns(const char *what, const char *s, json_t **out)
{
	json_t *a = json_array();
	const char *p = s;

	if (a == NULL)
		return -1;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

		if (n == 0 || n > 63) {
			dt_error("%s: bad column list: %s", what, s);
			json_decref(a);
			return -1;
		}
		json_array_append_new(a, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	json_decref(*out);
	*out = a;
	return 0;
}

static int
check_name(const char *what, const char *v)
{
	if (v == NULL || *v == '\0' || strlen(v) > 127) {
		dt_error("%s: must be a name of 1 to 127 characters", what);
		return -1;
	}
	return 0;
}

/*
 * DT_STOP_FILE must name a place where a file can appear: a directory
 * that exists.  Returns 0 or -1 after logging.
 */
static int
check_stop_file(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	struct stat st;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (slash != NULL && slash[1] == '\0') {
		dt_error("DT_STOP_FILE: %s names a directory, not a file", path);
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		dt_error("DT_STOP_FILE: %s: no such directory", dir);
		return -1;
	}
	return 0;
}

/*
 * Reads the environment, then the flags, and checks them all, logging
 * one line per problem.  Returns 0 or an exit status: DT_EXIT_USAGE for
 * a bad command line, DT_EXIT_CONFIG for bad settings (with
 * --check-config every bad value, flags included, and the Supabase
 * settings too).
 */
static int
configure(struct fetch *f, int argc, char **argv)
{
	const char *run_id = dt_env("DT_RUN_ID", NULL), *cols;
	int c, nconf = 0, nusage = 0;

	f->table = dt_env("DT_SOURCE_TABLE", "messages");
	f->id_col = dt_env("DT_SOURCE_ID", "id");
	f->text_col = dt_env("DT_SOURCE_TEXT", "text");
	f->stop_file = dt_env("DT_STOP_FILE", NULL);
	f->batch = 100;
	f->max_records = 10000;
	f->lease = 900;
	f->attempts = 3;
	if (dt_env_ll("BATCH_SIZE", 100, 1, 10000, &f->batch) < 0)
		nconf++;
	if (dt_env_ll("DT_MAX_RECORDS", 10000, 0, 1000000000,
	    &f->max_records) < 0)
		nconf++;
	if (dt_env_ll("DT_LEASE_SECONDS", 900, 1, 604800, &f->lease) < 0)
		nconf++;
	if (dt_env_ll("DT_MAX_ATTEMPTS", 3, 1, 1000, &f->attempts) < 0)
		nconf++;
	if (dt_env_ll("DT_FETCH_MAX_TEXT_BYTES", DEFAULT_MAX_TEXT, 1024, 262144,
	    &f->max_text) < 0)
		nconf++;
	if (dt_env_ll("DT_MAX_LINE", DEFAULT_MAX_LINE, 4096, 1073741824,
	    &f->max_line) < 0)
		nconf++;
	if ((cols = dt_env("DT_SOURCE_COLUMNS", NULL)) != NULL &&
	    parse_columns("DT_SOURCE_COLUMNS", cols, &f->columns) < 0)
		nconf++;

	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((c = getopt_long(argc, argv, "a:b:C:chi:l:m:npqRr:t:vVx:",
	    longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (dt_parse_ll("--max-attempts", optarg, 1, 1000,
			    &f->attempts) < 0)
				nusage++;
			break;
		case 'b':
			if (dt_parse_ll("--batch-size", optarg, 1, 10000,
			    &f->batch) < 0)
				nusage++;
			break;
		case 'C':
			if (parse_columns("--columns", optarg, &f->columns) < 0)
				nusage++;
			break;
		case 'c':
		case 'p':
		case 'R':
			if (f->mode != 0 && f->mode != c)
				return dt_cli_usage_error("%s", f->mode == 'c' ||
				    f->mode == 'p' || f->mode == 'R' ?
				    "--claim, --peek and --requeue exclude each "
				    "other" : "--preflight and --backlog go with "
				    "no other mode");
			f->mode = c;
			break;
		case OPT_PREFLIGHT:
		case OPT_BACKLOG:
			if (f->mode != 0 && f->mode != c)
				return dt_cli_usage_error("--preflight and "
				    "--backlog go with no other mode");
			f->mode = c;
			break;
		case 'h':
			json_decref(f->columns);
			exit(dt_cli_help(usage_text));
		case 'i':
			f->id_col = optarg;
			break;
		case 'l':
			if (dt_parse_ll("--lease-seconds", optarg, 1, 604800,
			    &f->lease) < 0)
				nusage++;
			break;
		case 'm':
			if (dt_parse_ll("--max-records", optarg, 0, 1000000000,
			    &f->max_records) < 0)
				nusage++;
			break;
		case 'n':
			f->dry_run = 1;
			break;
		case 'q':
			dt_log_adjust(-1);
			break;
		case 'r':
			run_id = optarg;
			break;
		case 't':
			f->table = optarg;
			break;
		case 'v':
			dt_log_adjust(1);
			break;
		case 'V':
			json_decref(f->columns);
			dt_cli_version();
			exit(dt_cli_close_stdout(DT_EXIT_OK));
		case 'x':
			f->text_col = optarg;
			break;
		case OPT_CHECK_CONFIG:
			f->check = 1;
			break;
		default:
			return dt_cli_usage_error(NULL);
		}
	}
	/* --requeue's kind: a name as error kinds are. */
	if (f->mode == 'R' && optind < argc) {
		f->kind = argv[optind++];
		if (*f->kind == '\0' || strlen(f->kind) > 64 ||
		    strspn(f->kind, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
		    strlen(f->kind))
			return dt_cli_usage_error("--requeue: bad kind: %s "
			    "(an error kind, e.g. config or lease_expired)",
			    f->kind);
	}
	if (optind < argc)
		return dt_cli_usage_error("unexpected argument: %s",
		    argv[optind]);
	if (f->mode == 0 && !f->check)
		return dt_cli_usage_error("say --claim, --peek or --requeue");
	if ((f->mode == OPT_PREFLIGHT || f->mode == OPT_BACKLOG) &&
	    (f->check || f->dry_run))
		return dt_cli_usage_error("--preflight and --backlog go with "
		    "no --check-config or --dry-run");
	if (check_name("DT_SOURCE_TABLE/--table", f->table) < 0)
		nconf++;
	if (check_name("DT_SOURCE_ID/--id-column", f->id_col) < 0)
		nconf++;
	if (check_name("DT_SOURCE_TEXT/--text-column", f->text_col) < 0)
		nconf++;
	if (f->stop_file != NULL && check_stop_file(f->stop_file) < 0)
		nconf++;
	if (f->batch > DT_SB_MAX_ROWS) {
		/* A claim leases every row it takes; the reply is cut. */
		dt_error("BATCH_SIZE/--batch-size: %lld is more than the %d rows "
		    "Supabase returns for one request (max_rows): a claim that "
		    "large would lease rows that never arrive", f->batch,
		    DT_SB_MAX_ROWS);
		nconf++;
	}
	if (run_id != NULL) {
		if (*run_id == '\0' || strlen(run_id) > RUN_ID_MAX) {
			dt_error("DT_RUN_ID/--run-id: must be 1 to %d characters",
			    RUN_ID_MAX);
			nconf++;
		} else
			snprintf(f->run_id, sizeof(f->run_id), "%s", run_id);
	} else if (!f->check)
		make_run_id(f->run_id, sizeof(f->run_id));
	if (f->check) {
		/* What the run itself would find out only when it starts. */
		if (!f->dry_run || f->mode == 'R')
			nconf += dt_supabase_check();
		return nconf + nusage > 0 ? DT_EXIT_CONFIG : 0;
	}
	if (nconf > 0)
		return DT_EXIT_CONFIG;
	return nusage > 0 ? DT_EXIT_USAGE : 0;
}

/* The arguments of one dt_claim or dt_peek call.  Returns a new reference. */
static json_t *
request_args(struct fetch *f, long long want, const char *after)
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
line_limit(const struct fetch *f)
{
	return (size_t)(f->max_line > 0 ? f->max_line : DEFAULT_MAX_LINE) / 2;
}

/* The longest text dt-fetch writes, in bytes. */
static size_t
text_limit(const struct fetch *f)
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
fit_line(struct fetch *f, json_t *rec, json_t *id)
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
	while (json_dumpb(rec, NULL, 0, LINE_FLAGS) > limit) {
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
 * Writes the rows of one reply as source records.  Stores a copy of the
 * last source id in *last (for --peek's paging; freed by the caller).
 * Returns the number of rows, or -1 when the reply is not what dt_claim
 * returns or stdout failed.
 */
static long long
emit_rows(struct fetch *f, json_t *rows, char **last)
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
		/*
		 * No line may be longer than the stages after us read: a
		 * long text is cut (the server cut it to characters
		 * already and says in text_bytes how long it was), and the
		 * record says so; dt-analyze's own limit applies to the
		 * rest.
		 */
		if (rec != NULL) {
			json_t *tb = json_object_get(row, "text_bytes");

			text = cut_text(rec, text, text_limit(f),
			    json_is_integer(tb) ? json_integer_value(tb) : 0);
			if (text == NULL || fit_line(f, rec, id) < 0) {
				json_decref(rec);
				rec = NULL;
			} else if (json_object_get(rec, "text_cut") != NULL) {
				f->cut++;
				dt_info("row %s: text of %lld bytes cut to %lld",
				    json_string_value(sid),
				    (long long)json_integer_value(
				    json_object_get(rec, "text_bytes")),
				    (long long)json_string_length(
				    json_object_get(rec, "text")));
			}
		}
		rc = rec != NULL ? dt_emit(rec) : -1;
		json_decref(rec);
		json_decref(text);
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
give_back(struct fetch *f, struct dt_supabase *sb, json_t *rows,
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

/* Claims or peeks batch after batch.  Sets f->status and f->message. */
static void
run(struct fetch *f, struct dt_supabase *sb)
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
		args = request_args(f, want, last);
		if (args == NULL) {
			f->status = DT_EXIT_TEMPFAIL;
			snprintf(f->message, sizeof(f->message), "out of memory");
			break;
		}
		/* The count shows whether the server cut the reply. */
		if (dt_supabase_call(sb, "POST", path, args, f->mode == 'c' ?
		    "count=exact" : NULL, 1, &res) != DT_SB_OK) {
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
emit_stage(struct fetch *f)
{
	json_t *rec;
	int rc;

	rec = json_pack("{sssssisos{sIsIsI}sb}", "stage", "dt-fetch",
	    "run_id", f->run_id, "status", f->status,
	    "message", f->message[0] != '\0' ? json_string(f->message) :
	    json_null(), "counts", f->mode == 'c' ? "claimed" : "peeked",
	    (json_int_t)f->emitted, "batches", (json_int_t)f->batches,
	    "text_cut", (json_int_t)f->cut, "interrupted", stop_flag != 0);
	if (rec == NULL)
		return -1;
	rc = dt_emit(rec);
	json_decref(rec);
	return rc;
}

/*
 * --requeue: returns the parked rows (of f->kind, or all) to the queue
 * through dt_requeue, or with --dry-run only counts them, and prints one
 * line: how many, by kind.  Returns the exit status.
 */
static int
requeue(struct fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	struct dt_sb_result res;
	json_t *args, *rows, *by, *v;
	char line[2048];
	const char *k;
	size_t o;
	int rc, first = 1;

	if (sb == NULL)
		return DT_EXIT_CONFIG;
	args = json_pack("{sosb}", "p_kind", f->kind != NULL ?
	    json_string(f->kind) : json_null(), "p_dry_run", f->dry_run);
	if (args == NULL) {
		dt_error("out of memory");
		dt_supabase_free(sb);
		return DT_EXIT_TEMPFAIL;
	}
	rc = dt_supabase_call(sb, "POST", "rpc/dt_requeue", args, NULL, 1,
	    &res);
	json_decref(args);
	rows = json_object_get(res.body, "rows");
	by = json_object_get(res.body, "by_kind");
	if (rc == DT_SB_OK && (!json_is_integer(rows) || !json_is_object(by))) {
		rc = DT_SB_BADREPLY;
		snprintf(res.message, sizeof(res.message),
		    "the dt_requeue reply is not {\"rows\",\"by_kind\"}");
	}
	if (rc != DT_SB_OK) {
		dt_error("Supabase %s: %s", rc == DT_SB_CONFIG ||
		    rc == DT_SB_REJECTED ? "refused the request" : "unavailable",
		    res.message);
		rc = rc == DT_SB_REJECTED ? DT_EXIT_CONFIG : dt_sb_exit(rc);
		dt_sb_result_clear(&res);
		dt_supabase_free(sb);
		return rc;
	}
	o = (size_t)snprintf(line, sizeof(line), "%s %" JSON_INTEGER_FORMAT
	    " parked row%s%s%s", f->dry_run ? "would requeue" : "requeued",
	    json_integer_value(rows), json_integer_value(rows) == 1 ? "" : "s",
	    f->kind != NULL ? " of kind " : "", f->kind != NULL ? f->kind : "");
	/* Without a kind, how many of each. */
	json_object_foreach(by, k, v) {
		if (f->kind != NULL || o >= sizeof(line) - 1)
			break;
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s %"
		    JSON_INTEGER_FORMAT, first ? ": " : ", ", k,
		    json_integer_value(v));
		first = 0;
	}
	dt_sb_result_clear(&res);
	dt_supabase_free(sb);
	if (printf("%s\n", line) < 0)
		return DT_EXIT_IOERR;
	return DT_EXIT_OK;
}

/* The PostgREST error code of a failed call ("" when it sent none). */
static const char *
sb_code(const struct dt_sb_result *res)
{
	const char *c = json_string_value(json_object_get(res->body, "code"));

	return c != NULL ? c : "";
}

/*
 * Says in line what a failed call to fn means for the operator, naming
 * what to fix.  Returns the exit status: 69 when Supabase could not be
 * reached, else 78.
 */
static int
explain(const struct fetch *f, const char *fn, const struct dt_sb_result *res,
    char *line, size_t len)
{
	const char *code = sb_code(res);

	if ((res->kind == DT_SB_UNAVAILABLE || res->kind == DT_SB_TIMEOUT) &&
	    res->status == 0) {
		snprintf(line, len, "SUPABASE_URL: Supabase cannot be reached "
		    "(%s)", res->message);
		return DT_EXIT_UNAVAILABLE;
	}
	if (res->kind == DT_SB_UNAVAILABLE || res->kind == DT_SB_TIMEOUT) {
		/* 5xx, 429: e.g. a statement timeout (57014) on a big table. */
		snprintf(line, len, "Supabase could not answer %s (%s); try "
		    "again later", fn, res->message);
		return DT_EXIT_UNAVAILABLE;
	}
	if (strcmp(code, "PGRST202") == 0)
		snprintf(line, len, "migrations not applied: %s is missing or "
		    "older than this dt (%s); apply supabase/migrations "
		    "(supabase db push)", fn, res->message);
	else if (strcmp(code, "42501") == 0)
		/* lib/supabase.c says "not a secret (service) key" after a 401. */
		snprintf(line, len, "SUPABASE_KEY: %sits role may not call %s "
		    "(%s)", strstr(res->message, "not a secret") != NULL ? "" :
		    "not a secret (service) key: ", fn, res->message);
	else if (res->status == 401 || res->status == 403)
		snprintf(line, len, "SUPABASE_KEY: refused (%s)", res->message);
	else if (strcmp(code, "42P01") == 0)
		snprintf(line, len, "DT_SOURCE_TABLE: no table or view %s "
		    "(%s)", f->table, res->message);
	else if (strcmp(code, "42703") == 0)
		snprintf(line, len, "DT_SOURCE_ID, DT_SOURCE_TEXT or "
		    "DT_SOURCE_COLUMNS: %s", res->message);
	else if (res->status == 404)
		snprintf(line, len, "SUPABASE_URL: not a Supabase project's URL "
		    "(%s)", res->message);
	else
		snprintf(line, len, "Supabase refused %s (%s)", fn,
		    res->message);
	return DT_EXIT_CONFIG;
}

/* A count from dt_backlog's answer (0 when absent). */
static long long
backlog_count(json_t *backlog, const char *key)
{
	return (long long)json_integer_value(json_object_get(backlog, key));
}

/*
 * The other functions the stages call, each with arguments that give it
 * nothing to do (no results, a run that holds nothing, a dry run), so a
 * database without them, or with an older signature, answers PGRST202.
 * dt_claim cannot be called so; dt_peek has its signature.
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
 * The checks of --preflight and --backlog, none of which changes
 * anything: dt_backlog (only the service role may call it, so it also
 * proves the key), dt_peek with this run's table, columns and limits
 * (dt_claim's arguments: a database behind this dt answers PGRST202),
 * and the probes above.  Stores a new reference to the backlog in
 * *backlog and to the peeked rows in *rows.  Returns 0, or the exit
 * status with the reason in line (and both NULL).
 */
static int
inspect(struct fetch *f, struct dt_supabase *sb, json_t **backlog,
    json_t **rows, char *line, size_t len)
{
	struct dt_sb_result res;
	json_t *args;
	size_t i;
	int rc = 0;

	*backlog = *rows = NULL;
	args = json_pack("{ssss}", "p_source_table", f->table, "p_id_column",
	    f->id_col);
	if (args == NULL || dt_supabase_call(sb, "POST", "rpc/dt_backlog",
	    args, NULL, 1, &res) != DT_SB_OK || !json_is_object(res.body)) {
		rc = args == NULL ? DT_EXIT_TEMPFAIL :
		    res.kind == DT_SB_OK ? DT_EXIT_TEMPFAIL :
		    explain(f, "dt_backlog", &res, line, len);
		if (args == NULL)
			snprintf(line, len, "out of memory");
		else if (res.kind == DT_SB_OK)
			snprintf(line, len, "dt_backlog's answer is not a JSON "
			    "object");
		json_decref(args);
		if (args != NULL)
			dt_sb_result_clear(&res);
		return rc;
	}
	json_decref(args);
	*backlog = json_incref(res.body);
	dt_sb_result_clear(&res);
	args = request_args(f, SAMPLE_ROWS, NULL);
	if (args == NULL) {
		snprintf(line, len, "out of memory");
		return DT_EXIT_TEMPFAIL;
	}
	/* The sizes come from text_bytes: the texts themselves may be cut. */
	json_object_set_new(args, "p_max_text_chars", json_integer(64));
	if (dt_supabase_call(sb, "POST", "rpc/dt_peek", args, NULL, 1, &res) !=
	    DT_SB_OK)
		rc = explain(f, "dt_peek", &res, line, len);
	else if (!json_is_array(res.body)) {
		snprintf(line, len, "dt_peek's answer is not a JSON array");
		rc = DT_EXIT_TEMPFAIL;
	} else
		*rows = json_incref(res.body);
	json_decref(args);
	dt_sb_result_clear(&res);
	for (i = 0; rc == 0 && i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (dt_supabase_call_raw(sb, "POST", probes[i].path,
		    probes[i].args, strlen(probes[i].args), NULL, 1, &res) !=
		    DT_SB_OK)
			rc = explain(f, probes[i].path + 4, &res, line, len);
		dt_sb_result_clear(&res);
	}
	if (rc != 0) {
		json_decref(*backlog);
		json_decref(*rows);
		*backlog = *rows = NULL;
	}
	return rc;
}

/* Whether a (possibly cut) text holds anything but white space. */
static int
blank(json_t *text)
{
	const char *s = json_string_value(text);

	if (s == NULL)
		return 1;
	return s[strspn(s, " \t\r\n\f\v")] == '\0';
}

/* --preflight: prints the one line.  Returns the exit status. */
static int
preflight(struct fetch *f, struct dt_supabase *sb)
{
	json_t *backlog, *rows;
	char line[1400], skipped[48];
	int rc;

	if (sb == NULL)
		return dt_preflight_line("supabase", DT_EXIT_CONFIG,
		    "SUPABASE_URL or SUPABASE_KEY: not valid (the lines above "
		    "say why)");
	if ((rc = inspect(f, sb, &backlog, &rows, line, sizeof(line))) != 0)
		return dt_preflight_line("supabase", rc, "%s", line);
	/* A database that counts skipped rows (no text) says so too. */
	skipped[0] = '\0';
	if (json_object_get(backlog, "skipped") != NULL)
		snprintf(skipped, sizeof(skipped), ", %lld skipped",
		    backlog_count(backlog, "skipped"));
	rc = dt_preflight_line("supabase", DT_EXIT_OK, "migrations applied, "
	    "secret (service) key, source %s readable; backlog: %lld unclaimed, "
	    "%lld leased, %lld parked (%lld done%s)", f->table,
	    backlog_count(backlog, "unclaimed"), backlog_count(backlog,
	    "leased"), backlog_count(backlog, "failed"),
	    backlog_count(backlog, "done"), skipped);
	json_decref(backlog);
	json_decref(rows);
	return rc;
}

/* Analyses --backlog averages, the newest first (the "limit" below). */
#define HISTORY_ROWS "200"

/*
 * The token counts and cost of the last analyses stored (at most
 * HISTORY_ROWS), for an estimate from what the API really counted.
 * Returns a new reference to {"rows", "prompt_tokens",
 * "completion_tokens", "cost_usd"} (averages), or NULL when there are
 * none or they cannot be read (logged at debug level: an estimate does
 * without them).
 */
static json_t *
history(struct dt_supabase *sb)
{
	struct dt_sb_result res;
	double in = 0, out = 0, cost = 0;
	long long n = 0, ncost = 0;
	json_t *row, *o = NULL;
	size_t i;

	if (dt_supabase_call(sb, "GET", "dt_results?select=prompt_tokens,"
	    "completion_tokens,cost_usd&status=eq.done&prompt_tokens=not.is."
	    "null&completion_tokens=not.is.null&order=done_at.desc.nullslast"
	    "&limit=" HISTORY_ROWS, NULL, NULL, 1, &res) != DT_SB_OK ||
	    !json_is_array(res.body)) {
		dt_debug("no history of analyses: %s", res.message);
		dt_sb_result_clear(&res);
		return NULL;
	}
	json_array_foreach(res.body, i, row) {
		json_t *p = json_object_get(row, "prompt_tokens");
		json_t *c = json_object_get(row, "completion_tokens");
		json_t *u = json_object_get(row, "cost_usd");

		if (!json_is_integer(p) || !json_is_integer(c))
			continue;
		in += (double)json_integer_value(p);
		out += (double)json_integer_value(c);
		n++;
		if (json_is_number(u)) {
			cost += json_number_value(u);
			ncost++;
		}
	}
	dt_sb_result_clear(&res);
	if (n > 0)
		o = json_pack("{sIsfsfsf}", "rows", (json_int_t)n,
		    "prompt_tokens", in / (double)n, "completion_tokens",
		    out / (double)n, "cost_usd", ncost > 0 ?
		    cost / (double)ncost : 0.0);
	return o;
}

/*
 * --backlog: one JSON object on stdout, {"backlog": dt_backlog's answer,
 * "sample": {"rows", "blank", "text_bytes"}, "max_records", "batch_size",
 * "max_text_bytes", "history"}: the first rows a claim would take (at most
 * SAMPLE_ROWS), how many of them have no text, and the bytes of the
 * others' texts as a run would send them (cut to DT_FETCH_MAX_TEXT_BYTES);
 * "history" (only when there is one) from history().
 * On failure the one line of --preflight on stderr.  Returns the exit
 * status.
 */
static int
backlog(struct fetch *f, struct dt_supabase *sb)
{
	json_t *bl, *rows, *row, *out, *hist;
	long long nblank = 0, bytes = 0;
	char line[1400];
	size_t i;
	int rc;

	if (sb == NULL)
		return DT_EXIT_CONFIG;
	if ((rc = inspect(f, sb, &bl, &rows, line, sizeof(line))) != 0) {
		dt_error("%s", line);
		return rc;
	}
	json_array_foreach(rows, i, row) {
		json_t *tb = json_object_get(row, "text_bytes");
		long long n = json_is_integer(tb) ? json_integer_value(tb) : 0;

		if (blank(json_object_get(json_object_get(row, "data"),
		    f->text_col)))
			nblank++;
		else
			bytes += n < f->max_text ? n : f->max_text;
	}
	out = json_pack("{sOs{sIsIsI}sIsIsI}", "backlog", bl, "sample",
	    "rows", (json_int_t)json_array_size(rows), "blank",
	    (json_int_t)nblank, "text_bytes", (json_int_t)bytes,
	    "max_records", (json_int_t)f->max_records, "batch_size",
	    (json_int_t)f->batch, "max_text_bytes", (json_int_t)f->max_text);
	if (out != NULL && (hist = history(sb)) != NULL)
		json_object_set_new(out, "history", hist);
	rc = out != NULL && dt_emit(out) == 0 ? DT_EXIT_OK : DT_EXIT_IOERR;
	json_decref(out);
	json_decref(bl);
	json_decref(rows);
	return rc;
}

/* Prints what --dry-run would send. */
static int
dry_run(struct fetch *f)
{
	json_t *args = request_args(f, f->max_records > 0 &&
	    f->max_records < f->batch ? f->max_records : f->batch, NULL);
	json_t *out = json_pack("{sssssssO}", "dry_run", "dt-fetch",
	    "method", "POST", "path", f->mode == 'c' ? "/rest/v1/rpc/dt_claim" :
	    "/rest/v1/rpc/dt_peek", "body", args);
	int rc = out != NULL ? dt_emit(out) : -1;

	json_decref(args);
	json_decref(out);
	return rc < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct fetch f;
	struct dt_supabase *sb = NULL;
	int rc;

	memset(&f, 0, sizeof(f));
	if (dt_log_init("dt-fetch") < 0 || dt_watch_start() < 0)
		return DT_EXIT_CONFIG;
	dt_out_init();
	dt_config_register_secrets();
	if ((rc = configure(&f, argc, argv)) != 0 || f.check) {
		json_decref(f.columns);
		return rc;
	}
	if (f.mode == 'R') {
		rc = requeue(&f);
		json_decref(f.columns);
		return dt_cli_close_stdout(rc);
	}
	if (f.dry_run) {
		rc = dry_run(&f);
		json_decref(f.columns);
		return dt_cli_close_stdout(rc);
	}
	if (f.mode == OPT_PREFLIGHT || f.mode == OPT_BACKLOG) {
		sb = dt_supabase_new();
		rc = f.mode == OPT_PREFLIGHT ? preflight(&f, sb) :
		    backlog(&f, sb);
		dt_supabase_free(sb);
		json_decref(f.columns);
		return dt_cli_close_stdout(rc);
	}
	catch_signals();
	if ((sb = dt_supabase_new()) == NULL) {
		f.status = DT_EXIT_CONFIG;
		snprintf(f.message, sizeof(f.message),
		    "bad Supabase configuration (see the log)");
	} else
		run(&f, sb);
	if (stop_flag && f.status == DT_EXIT_OK) {
		f.status = DT_EXIT_TEMPFAIL;
		snprintf(f.message, sizeof(f.message),
		    "interrupted after %lld rows", f.emitted);
		dt_warn("%s", f.message);
	}
	if (f.status != DT_EXIT_PIPE)
		emit_stage(&f);
	dt_info("run %s: %s %lld rows in %lld batches", f.run_id,
	    f.mode == 'c' ? "claimed" : "peeked", f.emitted, f.batches);
	dt_supabase_free(sb);
	json_decref(f.columns);
	return dt_cli_close_stdout(f.status);
}
