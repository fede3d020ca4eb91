/*
 * options.c: dt-fetch's command line and environment, read into a
 * struct dt_fetch and checked (see fetch.h).
 */
#include <getopt.h>
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
#include "log.h"

#include "fetch.h"
#include "reuse.h"

static const char usage_text[] =
    "usage: dt-fetch -c | -p [-hnqvV] [-a attempts] [-b size] [-C columns]\n"
    "                [-i column] [-l seconds] [-m count] [-r run-id]\n"
    "                [-t table] [-x column] [--reuse version]\n"
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
    "      --reuse version    with --claim: a text already analysed with\n"
    "                         this prompt version (dt-analyze\n"
    "                         --prompt-version) comes with its stored\n"
    "                         analysis and \"reused\"; a text being\n"
    "                         analysed (in this claim or under another\n"
    "                         lease) comes with \"same_text\" and a \"skip\",\n"
    "                         and takes that analysis in dt-store\n"
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
	{"reuse", required_argument, NULL, OPT_REUSE},
	{"run-id", required_argument, NULL, 'r'},
	{"table", required_argument, NULL, 't'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{"text-column", required_argument, NULL, 'x'},
	{NULL, 0, NULL, 0}
};

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
 * Reads the settings from the environment into f, and DT_RUN_ID into
 * *run_id.  Returns the number of bad values (each logged).
 */
static int
read_env(struct dt_fetch *f, const char **run_id)
{
	const char *cols;
	int nconf = 0;

	*run_id = dt_env("DT_RUN_ID", NULL);
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
	return nconf;
}

/*
 * Takes mode option c (--claim, --peek, --requeue, --preflight or
 * --backlog).  Returns 0, or DT_EXIT_USAGE after the error line when
 * another mode was given already.
 */
static int
set_mode(struct dt_fetch *f, int c)
{
	if (f->mode != 0 && f->mode != c)
		return dt_cli_usage_error("%s", c != OPT_PREFLIGHT &&
		    c != OPT_BACKLOG && (f->mode == 'c' || f->mode == 'p' ||
		    f->mode == 'R') ? "--claim, --peek and --requeue exclude "
		    "each other" : "--preflight and --backlog go with no other "
		    "mode");
	f->mode = c;
	return 0;
}

/*
 * Reads the flags into f, and --run-id into *run_id, counting bad values
 * in *nusage (each logged).  Returns 0, or DT_EXIT_USAGE after the error
 * line for a bad command line.  --help and --version exit here.
 */
static int
read_flags(struct dt_fetch *f, int argc, char **argv, const char **run_id,
    int *nusage)
{
	int c, rc;

	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((c = getopt_long(argc, argv, "a:b:C:chi:l:m:npqRr:t:vVx:",
	    longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			*nusage += dt_parse_ll("--max-attempts", optarg, 1, 1000,
			    &f->attempts) < 0;
			break;
		case 'b':
			*nusage += dt_parse_ll("--batch-size", optarg, 1, 10000,
			    &f->batch) < 0;
			break;
		case 'C':
			*nusage += parse_columns("--columns", optarg,
			    &f->columns) < 0;
			break;
		case 'c':
		case 'p':
		case 'R':
		case OPT_PREFLIGHT:
		case OPT_BACKLOG:
			if ((rc = set_mode(f, c)) != 0)
				return rc;
			break;
		case 'h':
			json_decref(f->columns);
			exit(dt_cli_help(usage_text));
		case 'i':
			f->id_col = optarg;
			break;
		case 'l':
			*nusage += dt_parse_ll("--lease-seconds", optarg, 1,
			    604800, &f->lease) < 0;
			break;
		case 'm':
			*nusage += dt_parse_ll("--max-records", optarg, 0,
			    1000000000, &f->max_records) < 0;
			break;
		case 'n':
			f->dry_run = 1;
			break;
		case 'q':
		case 'v':
			dt_log_adjust(c == 'v' ? 1 : -1);
			break;
		case 'r':
			*run_id = optarg;
			break;
		case 't':
			f->table = optarg;
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
		case OPT_REUSE:
			*nusage += dt_fetch_reuse_check("--reuse", optarg) < 0;
			f->reuse = optarg;
			break;
		default:
			return dt_cli_usage_error(NULL);
		}
	}
	return 0;
}

/*
 * Reads what follows the flags (--requeue's kind) and checks that the
 * modes go together.  Returns 0, or DT_EXIT_USAGE after the error line.
 */
static int
read_operands(struct dt_fetch *f, int argc, char **argv)
{
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
	if (f->reuse != NULL && f->mode != 'c')
		return dt_cli_usage_error("--reuse goes with --claim only");
	if ((f->mode == OPT_PREFLIGHT || f->mode == OPT_BACKLOG) &&
	    (f->check || f->dry_run))
		return dt_cli_usage_error("--preflight and --backlog go with "
		    "no --check-config or --dry-run");
	return 0;
}

/*
 * Checks the settings that go together and the run id (run_id, or a
 * generated one).  Returns the number of problems (each logged).
 */
static int
check_settings(struct dt_fetch *f, const char *run_id)
{
	int nconf = 0;

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
	return nconf;
}

int
dt_fetch_configure(struct dt_fetch *f, int argc, char **argv)
{
	const char *run_id;
	int rc, nconf, nusage = 0;

	nconf = read_env(f, &run_id);
	if ((rc = read_flags(f, argc, argv, &run_id, &nusage)) != 0 ||
	    (rc = read_operands(f, argc, argv)) != 0)
		return rc;
	nconf += check_settings(f, run_id);
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
