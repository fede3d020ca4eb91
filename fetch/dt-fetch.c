/*
 * dt-fetch: claims unanalyzed rows of the bot's table through Supabase's
 * data API (dt_claim) and writes them as NDJSON source records, batch by
 * batch, then the stage record, also when Supabase cannot be reached.
 * --peek reads what a claim would get; --requeue returns parked rows to
 * the queue.  See docs/supabase.md.  Here: main and the settings; the
 * other files are named in fetch.h.
 */
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"

#include "fetch.h"

static const char usage_head[] =
    "usage: dt-fetch -c | --peek [-hnqvV] [-a attempts] [-b size] [-C columns]\n"
    "                [-i column] [-l seconds] [-m count] [-r run-id]\n"
    "                [-t table] [-x column] [--reuse version]\n"
    "       dt-fetch -R [-nqv] [kind]\n"
    "       dt-fetch --check-config [-c | --peek] [-n] [option ...]\n"
    "       dt-fetch --preflight | --backlog [option ...]\n"
    "\n"
    "Claims unanalyzed rows of the source table through Supabase's data API\n"
    "and writes one NDJSON source record per row, then a stage record.\n"
    "--requeue returns parked rows (all, or those whose last_error.kind is\n"
    "kind) to the queue and prints how many; with -n it only counts them.\n";

static const char usage_tail[] =
    "Longer texts than DT_FETCH_MAX_TEXT_BYTES are cut and marked\n"
    "\"text_cut\"; no line is longer than half of DT_MAX_LINE.  SIGTERM,\n"
    "SIGINT or the stop file: no more claims, exit 75.  Exit status: 0 done,\n"
    "64 usage, 69 Supabase unavailable, 74 output error, 75 interrupted,\n"
    "78 bad configuration (URL, key, table, column or function).\n";

/* What the table reads.  on[]: --claim, --peek, --requeue, --preflight
 * and --backlog. */
static struct dt_fetch fetch;
static int on[5];
static const char *run_id, *cols;

static const struct dt_opt opt[] = {
	{0, "backlog", NULL, DT_OPT_SWITCH, &on[4], NULL, 0, 0, NULL,
	    "change nothing: print the backlog, the sizes of the texts a "
	    "claim would take and the limits (dt-entrypoint --dry-run)"},
	{'c', "claim", NULL, DT_OPT_SWITCH, &on[0], NULL, 0, 0, NULL,
	    "lease rows to this run (the CronJob's mode)"},
	{0, "peek", NULL, DT_OPT_SWITCH, &on[1], NULL, 0, 0, NULL,
	    "read what a claim would get; change nothing"},
	{'R', "requeue", NULL, DT_OPT_SWITCH, &on[2], NULL, 0, 0, NULL,
	    "return parked rows to the queue (above); a kind may follow"},
	{0, "preflight", NULL, DT_OPT_SWITCH, &on[3], NULL, 0, 0, NULL,
	    "change nothing: check the migrations, the key and the source; "
	    "print \"supabase: ready: ...\" or \"supabase: not ready: ...\" "
	    "naming what to fix; exit 0, 78 or 69 (unreachable)"},
	{'n', "dry-run", NULL, DT_OPT_SWITCH, &fetch.dry_run, NULL, 0, 0,
	    NULL, "print the first request instead of sending it"},
	{'b', "batch-size", "BATCH_SIZE", DT_OPT_INT, &fetch.batch, "100", 1,
	    DT_SB_MAX_ROWS, "n", "rows per claim: a claim leases them all, "
	    "and Supabase returns at most 1000"},
	{.ch = 'm', .flag = "max-records", .env = "DT_MAX_RECORDS",
	    .type = DT_OPT_SHARED, .out = &fetch.max_records},
	{'l', "lease-seconds", "DT_LEASE_SECONDS", DT_OPT_INT, &fetch.lease,
	    "900", 1, 604800, "n", "how long a claim holds its rows"},
	{'a', "max-attempts", "DT_MAX_ATTEMPTS", DT_OPT_INT, &fetch.attempts,
	    "3", 1, 1000, "n", "record-specific failures before a row is "
	    "parked as failed"},
	{0, NULL, "DT_FETCH_MAX_TEXT_BYTES", DT_OPT_INT, &fetch.max_text,
	    "65536", 1024, 262144, NULL, "longer texts are cut"},
	{.env = "DT_MAX_LINE", .type = DT_OPT_SHARED, .out = &fetch.max_line,
	    .min = 4096, .max = 1073741824, .help = "a record line is at "
	    "most half of it"},
	{'C', "columns", "DT_SOURCE_COLUMNS", DT_OPT_TEXT, &cols, NULL, 0,
	    0, "list", "more source columns for \"row\", comma-separated"},
	{'i', "id-column", "DT_SOURCE_ID", DT_OPT_TEXT, &fetch.id_col, "id",
	    0, 0, "name", "the source id column"},
	{0, "reuse", NULL, DT_OPT_TEXT, &fetch.reuse, NULL, 0, 0, "version",
	    "with --claim: a text analysed with this prompt version comes "
	    "with its analysis (\"reused\"), one being analysed with "
	    "\"same_text\" (docs/supabase.md)"},
	{'r', "run-id", "DT_RUN_ID", DT_OPT_TEXT, &run_id, NULL, 0, 0,
	    "id", "this run's id; one is generated when not given"},
	{'t', "table", "DT_SOURCE_TABLE", DT_OPT_TEXT, &fetch.table,
	    "messages", 0, 0, "name", "the source table"},
	{'x', "text-column", "DT_SOURCE_TEXT", DT_OPT_TEXT, &fetch.text_col,
	    "text", 0, 0, "name", "the message text column"},
	DT_OPT_USE("DT_STOP_FILE", &fetch.stop_file),
	DT_OPT_LIB("TIMEOUT_SECONDS"),
	DT_OPT_SUPABASE,
};

static const struct dt_cmd cmd = {usage_head, usage_tail, opt,
    sizeof(opt) / sizeof(opt[0])};

/* Whether s is 1 to 64 letters, digits, '_', '.' or '-'. */
static int
is_word(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Returns 1 after logging when v is not a name of 1 to 127 bytes. */
static int
bad_name(const char *what, const char *v)
{
	if (v != NULL && *v != '\0' && strlen(v) <= 127)
		return 0;
	dt_error("%s: must be a name of 1 to 127 characters", what);
	return 1;
}

/* Splits --columns' "a,b" into f->columns.  Returns 0 or 1 after logging. */
static int
bad_columns(struct dt_fetch *f, const char *s)
{
	const char *p;
	size_t n;

	f->columns = json_array();
	for (p = s; *p != '\0'; p += p[n] == ',' ? n + 1 : n) {
		n = strcspn(p, ",");
		if (n == 0 || n > 63) {
			dt_error("DT_SOURCE_COLUMNS/--columns: bad column "
			    "list: %s", s);
			return 1;
		}
		json_array_append_new(f->columns, json_stringn(p, n));
	}
	return f->columns == NULL;
}

/* Returns 1 after logging when DT_STOP_FILE's directory does not exist. */
static int
bad_stop_file(const char *path)
{
	size_t n = strlen(path);
	char copy[4096], *dir;
	struct stat st;

	if (n > 0 && path[n - 1] == '/') {
		dt_error("DT_STOP_FILE: %s names a directory, not a file",
		    path);
		return 1;
	}
	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	dt_error("DT_STOP_FILE: %s: no such directory", dir);
	return 1;
}

/*
 * Takes the mode switches into f->mode and --requeue's kind from the
 * operands, and checks that they go together.  Returns 0, or
 * DT_EXIT_USAGE after the error line.
 */
static int
check_modes(struct dt_fetch *f, int argc, char **argv)
{
	int i, n = 0;

	for (i = 0; i < 5; i++)
		if (on[i]) {
			f->mode = "cpRPB"[i];
			n++;
		}
	if (n > 1)
		return dt_cli_usage_error("%s", on[3] || on[4] ?
		    "--preflight and --backlog go with no other mode" :
		    "--claim, --peek and --requeue exclude each other");
	if (f->mode == 'R' && optind < argc) {
		f->kind = argv[optind++];
		if (!is_word(f->kind))
			return dt_cli_usage_error("--requeue: bad kind: %s (an "
			    "error kind, e.g. config or lease_expired)",
			    f->kind);
	}
	if (optind < argc)
		return dt_cli_usage_error("unexpected argument: %s",
		    argv[optind]);
	if (f->mode == 0 && !f->check)
		return dt_cli_usage_error("say --claim, --peek or --requeue");
	if (f->reuse != NULL && f->mode != 'c')
		return dt_cli_usage_error("--reuse goes with --claim only");
	if ((f->mode == 'P' || f->mode == 'B') &&
	    (f->check || f->dry_run))
		return dt_cli_usage_error("--preflight and --backlog go with "
		    "no --check-config or --dry-run");
	return 0;
}

/*
 * Checks the settings that go together, and sets the run id: the one
 * given, or the UTC time and 32 random bits (20261128T120000Z-1a2b3c4d).
 * Returns the number of problems (each logged).
 */
static int
check_settings(struct dt_fetch *f)
{
	int nconf = cols != NULL ? bad_columns(f, cols) : 0;
	time_t now = time(NULL);
	unsigned int r;
	struct tm tm;
	char t[32];

	nconf += bad_name("DT_SOURCE_TABLE/--table", f->table);
	nconf += bad_name("DT_SOURCE_ID/--id-column", f->id_col);
	nconf += bad_name("DT_SOURCE_TEXT/--text-column", f->text_col);
	if (f->stop_file != NULL)
		nconf += bad_stop_file(f->stop_file);
	if (run_id != NULL && (*run_id == '\0' ||
	    strlen(run_id) > RUN_ID_MAX)) {
		dt_error("DT_RUN_ID/--run-id: must be 1 to %d characters",
		    RUN_ID_MAX);
		nconf++;
	} else if (run_id != NULL)
		snprintf(f->run_id, sizeof(f->run_id), "%s", run_id);
	else if (!f->check) {
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (unsigned int)now ^ ((unsigned int)getpid() << 16);
		strftime(t, sizeof(t), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
		snprintf(f->run_id, sizeof(f->run_id), "%s-%08x", t, r);
	}
	return nconf;
}

/*
 * Reads the environment, then the flags, and checks them all, logging
 * one line per problem.  Returns 0 or an exit status: DT_EXIT_USAGE for
 * a bad command line, DT_EXIT_CONFIG for bad settings (with
 * --check-config every bad value, and the Supabase settings too).
 */
static int
configure(struct dt_fetch *f, int argc, char **argv)
{
	int rc = dt_opts_parse(&cmd, argc, argv, &f->check), nconf;

	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	nconf = rc != 0;
	if (f->reuse != NULL && !is_word(f->reuse)) {
		dt_error("--reuse: '%.64s' is not a prompt version (1 to 64 "
		    "letters, digits, '-', '_' or '.', as dt-analyze "
		    "--prompt-version prints it)", f->reuse);
		return dt_cli_usage_error(NULL);
	}
	if ((rc = check_modes(f, argc, argv)) != 0)
		return rc;
	nconf += check_settings(f);
	/* What the run itself would find out only when it starts. */
	if (f->check && (!f->dry_run || f->mode == 'R'))
		nconf += dt_supabase_check();
	return nconf > 0 ? DT_EXIT_CONFIG : 0;
}

int
main(int argc, char **argv)
{
	struct dt_fetch *f = &fetch;
	int rc;

	if (dt_cli_start("dt-fetch") < 0)
		return DT_EXIT_CONFIG;
	if ((rc = configure(f, argc, argv)) != 0 || f->check) {
		json_decref(f->columns);
		return rc;
	}
	if (f->mode == 'R')
		rc = dt_fetch_requeue(f);
	else if (f->dry_run)
		rc = dt_fetch_dry_run(f);
	else if (f->mode == 'P')
		rc = dt_fetch_preflight(f);
	else if (f->mode == 'B')
		rc = dt_fetch_backlog(f);
	else
		rc = dt_fetch_claim(f);
	json_decref(f->columns);
	return dt_cli_close_stdout(rc);
}
