/*
 * dt-fetch: claims unanalyzed rows of the bot's table through Supabase
 * and writes them as NDJSON source records, then the stage record
 * (docs/supabase.md).  Here: main, the settings, --requeue, --preflight
 * and --backlog.
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
#include "ndjson.h"

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

/* What the table reads; on[] are the modes, in check_modes()'s order. */
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

/* Returns 1 after logging when v is given but not 1 to max bytes long. */
static int
bad_length(const char *what, const char *v, size_t max)
{
	if (v == NULL || (*v != '\0' && strlen(v) <= max))
		return 0;
	dt_error("%s: must be %s1 to %zu characters", what, max == RUN_ID_MAX ?
	    "" : "a name of ", max);
	return 1;
}

/* Returns 1 after logging when DT_STOP_FILE's directory does not exist. */
static int
bad_stop_file(const char *path)
{
	char copy[4096], *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (path[strlen(path) - 1] == '/')
		dt_error("DT_STOP_FILE: %s names a directory, not a file", path);
	else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		dt_error("DT_STOP_FILE: %s: no such directory", dir);
	else
		return 0;
	return 1;
}

/* Sets the mode and --requeue's kind: 0, or DT_EXIT_USAGE (logged). */
static int
check_modes(struct dt_fetch *f, int argc, char **argv)
{
	int i, n = 0;

	if (f->reuse != NULL && !is_word(f->reuse)) {
		dt_error("--reuse: '%.64s' is not a prompt version (1 to 64 "
		    "letters, digits, '-', '_' or '.', as dt-analyze "
		    "--prompt-version prints it)", f->reuse);
		return dt_cli_usage_error(NULL);
	}
	for (i = 0; i < 5; i++)
		if (on[i]) {
			f->mode = "cpRPB"[i];
			n++;
		}
	if (n > 1)
		return dt_cli_usage_error("%s", on[3] || on[4] ?
		    "--preflight and --backlog go with no other mode" :
		    "--claim, --peek and --requeue exclude each other");
	if (f->mode == 'R' && optind < argc &&
	    !is_word(f->kind = argv[optind++]))
		return dt_cli_usage_error("--requeue: bad kind: %s (an error "
		    "kind, e.g. config or lease_expired)", f->kind);
	if (optind < argc)
		return dt_cli_usage_error("unexpected argument: %s",
		    argv[optind]);
	if (f->mode == 0 && !f->check)
		return dt_cli_usage_error("say --claim, --peek or --requeue");
	if (f->reuse != NULL && f->mode != 'c')
		return dt_cli_usage_error("--reuse goes with --claim only");
	if ((on[3] || on[4]) && (f->check || f->dry_run))
		return dt_cli_usage_error("--preflight and --backlog go with "
		    "no --check-config or --dry-run");
	return 0;
}

/*
 * Checks the settings and sets the run id, else the UTC time and 32
 * random bits (20261128T120000Z-1a2b3c4d).  Returns the problems logged.
 */
static int
check_settings(struct dt_fetch *f)
{
	time_t now = time(NULL);
	int nconf = 0;
	const char *p;
	unsigned int r;
	struct tm tm;
	char t[32];
	size_t n;

	/* --columns' "a,b": names of 1 to 63 bytes. */
	if (cols != NULL && (f->columns = json_array()) == NULL)
		nconf++;
	for (p = cols; p != NULL && *p != '\0'; p += p[n] == ',' ? n + 1 : n) {
		if ((n = strcspn(p, ",")) == 0 || n > 63) {
			dt_error("DT_SOURCE_COLUMNS/--columns: bad column "
			    "list: %s", cols);
			nconf++;
			break;
		}
		json_array_append_new(f->columns, json_stringn(p, n));
	}

	nconf += bad_length("DT_SOURCE_TABLE/--table", f->table, 127);
	nconf += bad_length("DT_SOURCE_ID/--id-column", f->id_col, 127);
	nconf += bad_length("DT_SOURCE_TEXT/--text-column", f->text_col, 127);
	if (f->stop_file != NULL)
		nconf += bad_stop_file(f->stop_file);
	if (bad_length("DT_RUN_ID/--run-id", run_id, RUN_ID_MAX))
		nconf++;
	else if (run_id != NULL)
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
 * Calls the function fn with args (stolen; NULL: out of memory) unless
 * the run has failed, and checks that the answer is of type (-1: any).
 * Returns a new reference to it, or NULL after failing the run naming
 * what to fix: 69 when Supabase could not answer (5xx, 429), else 78.
 */
static json_t *
call(struct dt_fetch *f, struct dt_supabase *sb, const char *fn,
    json_t *args, int type)
{
	struct dt_sb_result res;
	const char *code = "", *m = res.message;
	json_t *body = NULL;
	char path[64];
	int down;

	if (args == NULL && f->status == DT_EXIT_OK)
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "out of memory");
	if (f->status != DT_EXIT_OK) {
		json_decref(args);
		return NULL;
	}
	snprintf(path, sizeof(path), "rpc/%s", fn);
	dt_supabase_call(sb, "POST", path, args, NULL, 1, &res);
	json_decref(args);
	json_unpack(res.body, "{ss}", "code", &code);
	down = res.kind == DT_SB_UNAVAILABLE || res.kind == DT_SB_TIMEOUT;
	if (res.kind == DT_SB_OK && type >= 0 && (res.body == NULL ||
	    (int)json_typeof(res.body) != type))
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "%s's answer is not a "
		    "JSON %s", fn, type == JSON_OBJECT ? "object" : "array");
	else if (res.kind == DT_SB_OK)
		body = json_incref(res.body);
	else if (down && res.status == 0)
		dt_fetch_fail(f, DT_EXIT_UNAVAILABLE, "SUPABASE_URL: Supabase "
		    "cannot be reached (%s)", m);
	else if (down)
		dt_fetch_fail(f, DT_EXIT_UNAVAILABLE, "Supabase could not "
		    "answer %s (%s); try again later", fn, m);
	else if (strcmp(code, "PGRST202") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "migrations not applied: %s "
		    "is missing or older than this dt (%s); apply "
		    "supabase/migrations (supabase db push)", fn, m);
	else if (strcmp(code, "42501") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_KEY: %sits role may "
		    "not call %s (%s)", strstr(m, "not a secret") != NULL ? "" :
		    "not a secret (service) key: ", fn, m);
	else if (res.status == 401 || res.status == 403)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_KEY: refused (%s)",
		    m);
	else if (strcmp(code, "42P01") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "DT_SOURCE_TABLE: no table or "
		    "view %s (%s)", f->table, m);
	else if (strcmp(code, "42703") == 0)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "DT_SOURCE_ID, DT_SOURCE_TEXT "
		    "or DT_SOURCE_COLUMNS: %s", m);
	else if (res.status == 404)
		dt_fetch_fail(f, DT_EXIT_CONFIG, "SUPABASE_URL: not a Supabase "
		    "project's URL (%s)", m);
	else
		dt_fetch_fail(f, DT_EXIT_CONFIG, "Supabase refused %s (%s)", fn,
		    m);
	dt_sb_result_clear(&res);
	return body;
}

/* Adds "history" to out (docs/supabase.md) when it can be read. */
static void
history(struct dt_supabase *sb, json_t *out)
{
	struct dt_sb_result res;
	double p = 0, c = 0, cost = 0;
	long long ncost = 0;
	json_t *row, *u;
	size_t i, n;

	if (dt_supabase_call(sb, "GET", "dt_results?select=prompt_tokens,"
	    "completion_tokens,cost_usd&status=eq.done&prompt_tokens=not.is."
	    "null&completion_tokens=not.is.null&order=done_at.desc.nullslast"
	    "&limit=200", NULL, NULL, 1, &res) != DT_SB_OK)
		dt_debug("no history of analyses: %s", res.message);
	n = json_array_size(res.body);
	json_array_foreach(res.body, i, row) {
		p += json_number_value(json_object_get(row, "prompt_tokens"));
		c += json_number_value(json_object_get(row,
		    "completion_tokens"));
		if (json_is_number(u = json_object_get(row, "cost_usd"))) {
			cost += json_number_value(u);
			ncost++;
		}
	}
	if (n > 0)
		json_object_set_new(out, "history", json_pack("{sIsfsfsf}",
		    "rows", (json_int_t)n, "prompt_tokens", p / (double)n,
		    "completion_tokens", c / (double)n, "cost_usd",
		    ncost > 0 ? cost / (double)ncost : 0.0));
	dt_sb_result_clear(&res);
}

/*
 * --preflight's and --backlog's calls: dt_backlog, dt_peek with this
 * run's settings, and the probes.  Returns --backlog's object, or NULL.
 */
static json_t *
backlog(struct dt_fetch *f, struct dt_supabase *sb)
{
	json_t *bl, *args, *rows, *row, *probes, *out = NULL;
	long long nblank = 0, bytes = 0;
	const char *fn;
	size_t i;

	bl = call(f, sb, "dt_backlog", json_pack("{ssss}", "p_source_table",
	    f->table, "p_id_column", f->id_col), JSON_OBJECT);
	/* The sizes come from text_bytes: the texts may be cut. */
	if ((args = dt_fetch_request_args(f, 200, NULL)) != NULL)
		json_object_set_new(args, "p_max_text_chars", json_integer(64));
	rows = call(f, sb, "dt_peek", args, JSON_ARRAY);
	/* The other functions, with nothing to do: missing is PGRST202. */
	probes = json_pack("{s{sss[]}s{sss[]}s{sssss[]}s{sb}}", "dt_settle",
	    "p_run_id", "dt-preflight", "p_results", "dt_reclaim", "p_run_id",
	    "dt-preflight", "p_results", "dt_release", "p_run_id",
	    "dt-preflight", "p_claim_key", "dt-preflight:0", "p_keep",
	    "dt_requeue", "p_dry_run", 1);
	if (probes == NULL && f->status == DT_EXIT_OK)
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "out of memory");
	json_object_foreach(probes, fn, args)
		json_decref(call(f, sb, fn, json_incref(args), -1));
	json_decref(probes);
	json_array_foreach(rows, i, row) {
		long long n = json_integer_value(json_object_get(row,
		    "text_bytes"));
		const char *s = json_string_value(json_object_get(
		    json_object_get(row, "data"), f->text_col));

		if (s == NULL || s[strspn(s, " \t\r\n\f\v")] == '\0')
			nblank++;
		else
			bytes += n < f->max_text ? n : f->max_text;
	}
	if (f->status == DT_EXIT_OK)
		out = json_pack("{sOs{sIsIsI}sIsIsI}", "backlog", bl, "sample",
		    "rows", (json_int_t)json_array_size(rows), "blank",
		    (json_int_t)nblank, "text_bytes", (json_int_t)bytes,
		    "max_records", (json_int_t)f->max_records, "batch_size",
		    (json_int_t)f->batch, "max_text_bytes",
		    (json_int_t)f->max_text);
	if (out != NULL && f->mode == 'B')
		history(sb, out);
	else if (out == NULL && f->status == DT_EXIT_OK)
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "out of memory");
	json_decref(bl);
	json_decref(rows);
	return out;
}

/* --requeue, --preflight and --backlog.  Returns the exit status. */
static int
inspect(struct dt_fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	json_int_t n[5] = {0, 0, 0, 0, -1};
	const char *k, *sep = ": ";
	char skipped[48] = "";
	json_t *out, *v;
	int rc;

	if (sb == NULL)
		return f->mode != 'P' ? DT_EXIT_CONFIG : dt_preflight_line(
		    "supabase", DT_EXIT_CONFIG, "SUPABASE_URL or SUPABASE_KEY: "
		    "not valid (the lines above say why)");
	if (f->mode != 'R')
		out = backlog(f, sb);
	else if ((out = call(f, sb, "dt_requeue", json_pack("{ss?sb}",
	    "p_kind", f->kind, "p_dry_run", f->dry_run), JSON_OBJECT)) !=
	    NULL && json_unpack(out, "{sIs{}}", "rows", &n[0], "by_kind"))
		dt_fetch_fail(f, DT_EXIT_TEMPFAIL, "the dt_requeue reply is "
		    "not {\"rows\",\"by_kind\"}");
	dt_supabase_free(sb);
	/* A database that counts skipped rows (no text) says so. */
	json_unpack(out, "{s{s?Is?Is?Is?Is?I}}", "backlog", "unclaimed", &n[0],
	    "leased", &n[1], "failed", &n[2], "done", &n[3], "skipped", &n[4]);
	if (n[4] >= 0)
		snprintf(skipped, sizeof(skipped), ", %lld skipped", n[4]);
	if (f->mode == 'P' && f->status != DT_EXIT_OK)
		rc = dt_preflight_line("supabase", f->status, "%s", f->message);
	else if (f->status != DT_EXIT_OK) {
		dt_error("%s", f->message);
		rc = f->status;
	} else if (f->mode == 'P')
		rc = dt_preflight_line("supabase", DT_EXIT_OK, "migrations "
		    "applied, secret (service) key, source %s readable; "
		    "backlog: %lld unclaimed, %lld leased, %lld parked (%lld "
		    "done%s)", f->table, n[0], n[1], n[2], n[3], skipped);
	else if (f->mode == 'R') {
		printf("%s %lld parked row%s%s%s", f->dry_run ? "would requeue"
		    : "requeued", n[0], n[0] == 1 ? "" : "s", f->kind != NULL ?
		    " of kind " : "", f->kind != NULL ? f->kind : "");
		/* Without a kind, how many of each. */
		json_object_foreach(f->kind == NULL ? json_object_get(out,
		    "by_kind") : NULL, k, v) {
			printf("%s%s %lld", sep, k, json_integer_value(v));
			sep = ", ";
		}
		rc = printf("\n") < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
	} else
		rc = dt_emit(out) < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
	json_decref(out);
	return rc;
}

int
main(int argc, char **argv)
{
	struct dt_fetch *f = &fetch;
	int rc, nconf;

	if (dt_cli_start("dt-fetch") < 0)
		return DT_EXIT_CONFIG;
	rc = dt_opts_parse(&cmd, argc, argv, &f->check);
	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	nconf = rc != 0;
	if ((rc = check_modes(f, argc, argv)) != 0)
		return rc;
	nconf += check_settings(f);
	/* What the run itself would find out only when it starts. */
	if (f->check && (!f->dry_run || f->mode == 'R'))
		nconf += dt_supabase_check();
	if (nconf > 0 || f->check)
		rc = nconf > 0 ? DT_EXIT_CONFIG : DT_EXIT_OK;
	else if (f->mode == 'c' || f->mode == 'p')
		rc = dt_cli_close_stdout(dt_fetch_claim(f));
	else
		rc = dt_cli_close_stdout(inspect(f));
	json_decref(f->columns);
	return rc;
}
