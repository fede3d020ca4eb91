/*
 * dt-report: sums up a run (docs/report.md).  Here: main, the settings
 * and the steps; report.h names the other files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "supabase.h"

#include "report.h"

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

static const char usage_head[] =
    "usage: dt-report [-hnqVv] [-L bytes] [--lang lang] [--message-file file]\n"
    "                 [file ...]\n"
    "       dt-report -M shards [-hnqVv] [--lang lang] [--message-file file]\n"
    "       dt-report --check-config | --preflight [option ...]\n"
    "\n"
    "Reads status records (or any stage's output) from the files or stdin\n"
    "and prints one run-summary JSON object on stdout.  Sends the report to\n"
    "Telegram, upserts the run ledger row in Supabase and pushes metrics to\n"
    "a Pushgateway when those are configured.\n";

static const char usage_tail[] =
    "SUPABASE_URL and SUPABASE_KEY are for the run ledger.\n"
    "\n"
    "Exit status: the worst of the run's (the stages' worst; 1 when records\n"
    "failed) and the report's: 69 Telegram unavailable, 75 flood control\n"
    "past the retry limit (or a shard's ledger row not written), 78 Telegram\n"
    "refused the token or chat.  The ledger row and the metrics are best\n"
    "effort: a failure is a warning, not an exit status.\n";

/* One run of dt-report: its settings (read by opts[]) and its state. */
static struct run {
	int check, preflight, dry_run, lang, notify;
	long long max_line, merge, shards, shard_index, wait_s, drain_s, top;
	const char *message_file, *stop_file, *expect, *schema_file;
	const char *topics_field, *run_id, *started, *finished;
	const char *table, *id_column, *pg_url, *pg_job;
	struct dt_rpt_tg tg;
	char **files;
	int nfiles, db;         /* db: SUPABASE_URL is set */
	double t_start, t_end;
	struct dt_rpt_tally tally;
	struct dt_http *h;
	struct dt_supabase *sb;
	json_t *schema, *summary, *msgs;
	json_t *merged;         /* --merge-shards: the shards' state */
	int shard;              /* one shard of a scale-out run */
	int send;               /* send, record and push (not a dry run) */
	int sent, silent, status;
} run;

static const struct dt_opt opts[] = {
	{.ch = 'L', .flag = "max-line", .env = "DT_MAX_LINE",
	    .type = DT_OPT_SHARED, .out = &run.max_line},
	{0, "lang", "DT_REPORT_LANG", DT_OPT_CHOICE, &run.lang, "en", 0, 0,
	    "en|ru", "report language"},
	{'M', "merge-shards", NULL, DT_OPT_INT, &run.merge, NULL, 1, 1000, "N",
	    "read no input: wait for the N shard rows of the run (DT_RUN_ID) "
	    "in the ledger, merge them and report the whole run"},
	{0, "message-file", NULL, DT_OPT_TEXT, &run.message_file, NULL, 0, 0,
	    "FILE", "also write the report's messages to FILE"},
	{'n', "dry-run", NULL, DT_OPT_SWITCH, &run.dry_run, NULL, 0, 0, NULL,
	    "send and write nothing; print the messages on stderr (or to "
	    "FILE)"},
	{0, "preflight", NULL, DT_OPT_SWITCH, &run.preflight, NULL, 0, 0, NULL,
	    "ask Telegram about the bot and the chat; print one line, "
	    "\"telegram: ready: ...\" or \"telegram: not ready: ...\"; exit "
	    "0, 78 (refused) or 69 (unreachable)"},
	{0, NULL, "TELEGRAM_BOT_TOKEN", DT_OPT_SECRET, &run.tg.token, NULL, 0,
	    0, NULL, "the bot's token; without it the report is printed, not "
	    "sent"},
	{0, NULL, "TELEGRAM_CHAT_ID", DT_OPT_TEXT, &run.tg.chat_id, NULL, 0, 0,
	    NULL, "the chat: a number, a negative group id or @channel"},
	{0, NULL, "TELEGRAM_THREAD_ID", DT_OPT_INT, &run.tg.thread_id, NULL,
	    1, 2147483647, NULL, "the forum topic"},
	{0, NULL, "TELEGRAM_API_URL", DT_OPT_TEXT, &run.tg.api_url,
	    "https://api.telegram.org", 0, 0, NULL, "Bot API base URL"},
	{0, NULL, "DT_REPORT_NOTIFY", DT_OPT_CHOICE, &run.notify, "problems",
	    0, 0, "problems|always|never", "problems: alerts notify, clean "
	    "runs are silent, an empty clean run sends nothing; always; never: "
	    "every report is silent"},
	{0, NULL, "DT_REPORT_TOP", DT_OPT_INT, &run.top, "10", 1, 1000, NULL,
	    "values shown of each field"},
	{0, NULL, "DT_REPORT_SCHEMA", DT_OPT_TEXT, &run.schema_file, NULL, 0,
	    0, NULL, "the analysis schema the report reads its fields from "
	    "(else DT_SCHEMA_FILE, else dt-analyze's)"},
	{0, NULL, "DT_REPORT_TOPICS_FIELD", DT_OPT_TEXT, &run.topics_field,
	    "topics", 0, 0, NULL, "the field whose values are the top topics"},
	{0, NULL, "DT_REPORT_RETRY_SECONDS", DT_OPT_INT, &run.tg.retry_s,
	    "120", 0, 3600, NULL, "how long to wait out Telegram's flood "
	    "control"},
	DT_OPT_USE("TIMEOUT_SECONDS", &run.tg.timeout_s),
	{0, NULL, "DT_PUSHGATEWAY_URL", DT_OPT_TEXT, &run.pg_url, NULL, 0, 0,
	    NULL, "push the run's metrics to this Prometheus Pushgateway"},
	{0, NULL, "DT_PUSHGATEWAY_JOB", DT_OPT_TEXT, &run.pg_job, "dt", 0, 0,
	    NULL, "the metrics' job name"},
	{0, NULL, "DT_SOURCE_TABLE", DT_OPT_TEXT, &run.table, "messages", 0, 0,
	    NULL, "the source table, for the ledger"},
	{0, NULL, "DT_SOURCE_ID", DT_OPT_TEXT, &run.id_column, "id", 0, 0,
	    NULL, "its id column"},
	{0, NULL, "DT_EXPECT_STAGES", DT_OPT_TEXT, &run.expect, NULL, 0, 0,
	    NULL, "stages whose missing stage record fails the run "
	    "(dt-entrypoint sets it)"},
	DT_OPT_USE("DT_RUN_ID", &run.run_id),
	{0, NULL, "DT_RUN_STARTED_AT", DT_OPT_TEXT, &run.started, NULL, 0, 0,
	    NULL, "when the run started (RFC 3339)"},
	{0, NULL, "DT_RUN_FINISHED_AT", DT_OPT_TEXT, &run.finished, NULL, 0, 0,
	    NULL, "when it finished (RFC 3339; default now)"},
	DT_OPT_USE("DT_SHARDS", &run.shards),
	DT_OPT_USE("DT_SHARD_INDEX", &run.shard_index),
	{0, NULL, "DT_SHARD_WAIT_SECONDS", DT_OPT_INT, &run.wait_s, "600", 0,
	    86400, NULL, "how long --merge-shards waits for the other shards"},
	DT_OPT_USE("DT_DRAIN_SECONDS", &run.drain_s),
	DT_OPT_USE("DT_STOP_FILE", &run.stop_file),
	DT_OPT_SUPABASE,
};

static const struct dt_cmd cmd = {usage_head, usage_tail, opts,
    sizeof(opts) / sizeof(opts[0])};

/* Reads an RFC 3339 time or seconds since the epoch.  Returns 0 or -1. */
static int
parse_time(const char *s, double *out)
{
	struct tm tm = {0};
	const char *p;
	char *end;
	double frac;
	long off;

	errno = 0;
	*out = strtod(s, &end);
	if (end != s && *end == '\0' && errno == 0)
		return 0;
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL &&
	    (p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm)) == NULL)
		return -1;
	frac = *p == '.' ? strtod(p, NULL) : 0;
	p += *p == '.' ? strspn(p + 1, "0123456789") + 1 : 0;
	if ((p = strptime(strcmp(p, "z") == 0 ? "Z" : p, "%z", &tm)) == NULL
	    || *p != '\0')
		return -1;
	off = tm.tm_gmtoff;     /* timegm() sets it to 0 */
	*out = (double)timegm(&tm) - (double)off + frac;
	return 0;
}

/* Logs fmt as an error when bad is set.  Returns bad (0 or 1). */
static int __attribute__((format(printf, 2, 3)))
problem(int bad, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (bad) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		dt_error("%s", msg);
	}
	return bad != 0;
}

/* Checks the http(s) URL *url; *url becomes buf, without trailing '/'. */
static int
bad_url(const char *name, const char **url, char *buf, size_t len)
{
	char safe[512];
	size_t n;

	if (*url == NULL)
		return 0;
	if (problem(strncmp(*url, "http://", 7) != 0 && strncmp(*url,
	    "https://", 8) != 0, "%s: '%s' is not an http(s) URL", name,
	    dt_http_safe_url(*url, safe, sizeof(safe))))
		return 1;
	snprintf(buf, len, "%s", *url);
	for (n = strlen(buf); n > 0 && buf[n - 1] == '/'; n--)
		buf[n - 1] = '\0';
	*url = buf;
	return 0;
}

/* Whether chat is @username or a number of at most 16 digits (52 bits). */
static int
chat_ok(const char *chat)
{
	size_t n = strlen(chat), neg = chat[0] == '-';

	if (chat[0] == '@')
		return n >= 5 && n <= 33 && isalpha((unsigned char)chat[1]) &&
		    strspn(chat + 1, ALNUM "_") == n - 1;
	return n > neg && n <= 16 + neg && strspn(chat + neg, "0123456789") ==
	    n - neg;
}

/* Checks what the table cannot.  Returns the problems (logged). */
static int
check_settings(struct run *r)
{
	static char tg_url[1024], pg_url[1024];
	const char *job = r->pg_job;
	int bad = 0;

	r->db = dt_env("SUPABASE_URL", NULL) != NULL;
	bad += problem(r->shard_index >= r->shards, "DT_SHARD_INDEX: %lld is "
	    "not below DT_SHARDS (%lld)", r->shard_index, r->shards);
	bad += problem(r->started != NULL && parse_time(r->started,
	    &r->t_start) < 0, "DT_RUN_STARTED_AT: '%s' is not an RFC 3339 "
	    "time", r->started);
	bad += problem(r->finished != NULL && parse_time(r->finished,
	    &r->t_end) < 0, "DT_RUN_FINISHED_AT: '%s' is not an RFC 3339 "
	    "time", r->finished);
	bad += bad_url("TELEGRAM_API_URL", &r->tg.api_url, tg_url,
	    sizeof(tg_url));
	bad += problem((r->tg.token == NULL) != (r->tg.chat_id == NULL),
	    "%s is set but %s is not: set both to send the report",
	    r->tg.token ? "TELEGRAM_BOT_TOKEN" : "TELEGRAM_CHAT_ID",
	    r->tg.token ? "TELEGRAM_CHAT_ID" : "TELEGRAM_BOT_TOKEN");
	bad += problem(r->tg.chat_id != NULL && !chat_ok(r->tg.chat_id),
	    "TELEGRAM_CHAT_ID: '%s' is neither a chat number nor an @channel "
	    "name", r->tg.chat_id);
	bad += problem(r->merge > 0 && (!r->db || r->run_id == NULL),
	    "--merge-shards reads the run ledger: it needs SUPABASE_URL, "
	    "SUPABASE_KEY and DT_RUN_ID");
	bad += bad_url("DT_PUSHGATEWAY_URL", &r->pg_url, pg_url,
	    sizeof(pg_url));
	bad += problem(strspn(job, ALNUM "_.-") != strlen(job) ||
	    strlen(job) > 100,
	    "DT_PUSHGATEWAY_JOB: '%s' may only have letters, digits, '_', "
	    "'.' and '-'", job);
	return bad;
}

/*
 * Reads and checks the settings (one line per problem) and the schema.
 * Returns 0, DT_EXIT_USAGE or DT_EXIT_CONFIG.
 */
static int
configure(struct run *r, int argc, char **argv)
{
	int rc = dt_opts_parse(&cmd, argc, argv, &r->check), bad = rc != 0;
	json_error_t err;

	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	r->files = argv + optind;
	r->nfiles = argc - optind;
	if (r->merge > 0 && r->nfiles > 0)
		return dt_cli_usage_error("--merge-shards reads no input "
		    "files");
	if (r->preflight && (r->nfiles > 0 || r->merge > 0 || r->check))
		return dt_cli_usage_error("--preflight reads no input and "
		    "goes with no --check-config or --merge-shards");
	if (r->tg.timeout_s > 60)
		r->tg.timeout_s = 60;
	bad += check_settings(r);
	if (r->schema_file == NULL)
		r->schema_file = dt_env("DT_SCHEMA_FILE", NULL);
	if (r->schema_file == NULL && access(dt_data_file("schema.json"),
	    R_OK) == 0)
		r->schema_file = dt_data_file("schema.json");
	if (r->schema_file != NULL && (r->schema = json_load_file(
	    r->schema_file, 0, &err)) == NULL) {
		dt_error("DT_REPORT_SCHEMA: %s: %s", r->schema_file, err.text);
		bad++;
	}
	if (r->check && r->db)
		bad += dt_supabase_check();
	if (r->started == NULL)
		r->t_start = (double)time(NULL);
	/* A shard's row is its report; shard 0's --merge-shards sends. */
	r->shard = r->merge == 0 && r->shards > 1;
	r->send = !r->dry_run && !r->shard;
	return bad > 0 ? DT_EXIT_CONFIG : 0;
}

/* Sets up the Supabase client and the tally.  Returns an exit status. */
static int
setup(struct run *r)
{
	if (r->db && (r->sb = dt_supabase_new()) == NULL)
		return DT_EXIT_CONFIG;
	return dt_rpt_tally_init(&r->tally, r->schema, (size_t)r->top,
	    r->topics_field) < 0 ? DT_EXIT_UNAVAILABLE : 0;
}

/* Tallies the input and the stages expected to report. */
static void
read_input(struct run *r)
{
	struct dt_reader *rd = dt_reader_new(r->files, r->nfiles,
	    (size_t)r->max_line);
	json_t *rec;
	int rc;

	while (rd != NULL && (rc = dt_reader_next(rd, &rec)) !=
	    DT_NDJSON_EOF) {
		if (rc == DT_NDJSON_RECORD)
			dt_rpt_tally_add(&r->tally, rec);
		else if (rc == DT_NDJSON_BAD)
			r->tally.bad_lines++;
		else
			r->status = DT_EXIT_DATAERR;
		json_decref(rec);
	}
	if (rd == NULL) {
		dt_error("out of memory");
		r->status = DT_EXIT_UNAVAILABLE;
	}
	dt_reader_free(rd);
	if (r->expect != NULL)
		dt_rpt_tally_expect(&r->tally, r->expect);
}

/*
 * Builds the summary.  The run started at DT_RUN_STARTED_AT, else at the
 * stages' earliest started_at, else, reading a pipe, when dt-report did.
 */
static int
summarise(struct run *r)
{
	char finished[40], own[40];
	const char *at = r->tally.started_at, *started = NULL, *id =
	    r->run_id ? r->run_id : r->tally.run_id[0] ? r->tally.run_id : NULL;
	time_t t;
	struct tm tm;
	struct stat st;
	json_t *s;

	if (r->finished == NULL)
		r->t_end = (double)time(NULL);
	t = (time_t)r->t_end;
	strftime(finished, sizeof(finished), "%Y-%m-%dT%H:%M:%SZ",
	    gmtime_r(&t, &tm));
	if (r->started != NULL && (r->merged == NULL || at[0] == '\0'))
		started = r->started;
	else if (at[0] != '\0' && parse_time(at, &r->t_start) == 0)
		started = at;
	else if (at[0] != '\0')
		dt_warn("started_at: '%s' is not an RFC 3339 time", at);
	else if (r->nfiles == 0 && fstat(STDIN_FILENO, &st) == 0 &&
	    S_ISFIFO(st.st_mode)) {
		t = (time_t)r->t_start;
		strftime(own, sizeof(own), "%Y-%m-%dT%H:%M:%SZ",
		    gmtime_r(&t, &tm));
		started = own;
	}
	if ((s = r->summary = dt_rpt_summary(&r->tally, id, started, finished,
	    started ? r->t_end - r->t_start : -1)) == NULL) {
		dt_error("out of memory");
		r->status = DT_EXIT_UNAVAILABLE;
		return -1;
	}
	r->status = dt_exit_worse(r->status, (int)json_integer_value(
	    json_object_get(s, "exit_code")));
	if (json_array_size(json_object_get(r->merged, "missing")) > 0) {
		r->status = dt_exit_worse(r->status, DT_EXIT_PARTIAL);
		if (strcmp(json_string_value(json_object_get(s, "state")),
		    "ok") == 0)
			json_object_set_new(s, "state", json_string("partial"));
	}
	if (r->merged != NULL)
		json_object_set(s, "shards", r->merged);
	if (r->shard)
		json_object_set_new(s, "shard", json_pack("{sIsIso}", "index",
		    (json_int_t)r->shard_index, "of", (json_int_t)r->shards,
		    "internal", json_deep_copy(r->tally.n)));
	return 0;
}

/* Writes the messages, "-- 8< --" between, to path (NULL: stderr). */
static int
write_messages(const char *path, json_t *msgs)
{
	FILE *f = path != NULL ? fopen(path, "w") : stderr;
	json_t *m;
	size_t i;

	json_array_foreach(f != NULL ? msgs : NULL, i, m)
		fprintf(f, "%s%s\n", i > 0 ? "-- 8< --\n" : "",
		    json_string_value(m));
	if (path != NULL && (f == NULL || fclose(f) != 0)) {
		dt_error("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Adds the database's part, makes the messages and sends or shows them. */
static int
send_report(struct run *r)
{
	int tg = r->tg.token != NULL && r->send, parts, rc;

	if (r->sb != NULL && !r->shard)
		dt_rpt_db_read(r->sb, r->table, r->id_column, r->summary);
	if ((r->msgs = dt_rpt_messages(r->summary, r->lang ? "ru" : "en",
	    4096)) == NULL)
		dt_error("out of memory");
	if (r->msgs == NULL || (r->send && (tg || r->pg_url != NULL) &&
	    (r->h = dt_http_new("dt-report")) == NULL)) {
		r->status = dt_exit_worse(r->status, DT_EXIT_UNAVAILABLE);
		return -1;
	}
	parts = (int)json_array_size(r->msgs);
	r->silent = r->notify == 2 || (r->notify == 0 && strcmp(
	    json_string_value(json_object_get(r->summary, "state")),
	    "ok") == 0);
	if (r->message_file != NULL && write_messages(r->message_file,
	    r->msgs) < 0)
		r->status = dt_exit_worse(r->status, DT_EXIT_IOERR);
	if (r->shard)
		dt_info("shard %lld of %lld: the run's report is sent by shard "
		    "0", r->shard_index, r->shards);
	else if (tg && r->notify == 0 && r->silent && json_integer_value(
	    json_object_get(r->summary, "records")) == 0)
		dt_info("nothing to report (no records, no problems): no "
		    "Telegram message under DT_REPORT_NOTIFY=problems");
	else if (tg) {
		rc = dt_rpt_tg_send(r->h, &r->tg, r->msgs, r->silent, &r->sent);
		r->status = dt_exit_worse(r->status, rc);
		if (rc == DT_EXIT_OK)
			dt_info("report sent to Telegram (%d message%s, %s)",
			    r->sent, r->sent == 1 ? "" : "s", r->silent ?
			    "silently" : "with notification");
	} else {
		if (r->tg.token == NULL && !r->dry_run)
			dt_info("Telegram is not configured "
			    "(TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID); the "
			    "report follows");
		if (r->message_file == NULL)
			write_messages(NULL, r->msgs);
	}
	json_object_set_new(r->summary, "report", json_pack("{sssisisbsb}",
	    "lang", r->lang ? "ru" : "en", "messages", r->sent, "parts",
	    parts, "sent", tg && r->sent == parts, "notify", !r->silent));
	json_object_set_new(r->summary, "exit_code", json_integer(r->status));
	return 0;
}

/* The ledger row and the metrics: best effort, but a shard's row counts. */
static void
record(struct run *r)
{
	const char *id = json_string_value(json_object_get(r->summary,
	    "run_id"));
	char shard_id[300];
	int ok;

	if (r->sb != NULL && !r->dry_run && id == NULL)
		dt_warn("no run id (DT_RUN_ID or the records' run_id): the run "
		    "ledger is not written");
	else if (r->sb != NULL && !r->dry_run) {
		snprintf(shard_id, sizeof(shard_id), "%s/%lld", id,
		    r->shard_index);
		ok = dt_rpt_db_upsert(r->sb, r->summary, r->shard ? shard_id :
		    id) == 0;
		json_object_set_new(r->summary, "ledger", json_string(ok ?
		    "written" : "failed"));
		if (!ok && r->shard)
			r->status = dt_exit_worse(r->status, DT_EXIT_TEMPFAIL);
	}
	if (r->pg_url != NULL && r->send) {
		ok = dt_rpt_metrics_push(r->h, r->pg_url, r->pg_job, r->summary,
		    r->status <= DT_EXIT_PARTIAL, (long long)r->t_end,
		    (long)r->tg.timeout_s * 1000);
		json_object_set_new(r->summary, "metrics", json_string(ok == 0 ?
		    "pushed" : "failed"));
	}
}

int
main(int argc, char **argv)
{
	struct run *r = &run;

	if (dt_cli_start("dt-report") < 0)
		return DT_EXIT_CONFIG;
	if ((r->status = configure(r, argc, argv)) == DT_EXIT_USAGE)
		return r->status;
	if (r->preflight)
		r->status = dt_rpt_tg_preflight(&r->tg, r->status != 0);
	else if (r->status == 0 && !r->check && (r->status = setup(r)) == 0) {
		if (r->merge > 0)
			r->merged = dt_rpt_db_merge_shards(r->sb, r->run_id,
			    r->merge, r->wait_s * 1000, r->stop_file,
			    r->drain_s, &r->tally);
		else
			read_input(r);
		if (summarise(r) == 0 && send_report(r) == 0) {
			record(r);
			json_object_set_new(r->summary, "exit_code",
			    json_integer(r->status));
			if (json_dumpf(r->summary, stdout, JSON_COMPACT |
			    JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) < 0
			    || putchar('\n') == EOF)
				r->status = dt_exit_worse(r->status,
				    DT_EXIT_IOERR);
		}
	}
	json_decref(r->msgs);
	json_decref(r->summary);
	json_decref(r->merged);
	json_decref(r->schema);
	dt_rpt_tally_free(&r->tally);
	dt_http_free(r->h);
	dt_supabase_free(r->sb);
	free(r->tg.token);
	return dt_cli_close_stdout(r->status);
}
