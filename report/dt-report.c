/*
 * dt-report: sums up a run.  Reads dt-store's status records (or any
 * stage's saved output), prints one run-summary JSON object on stdout,
 * sends the report to Telegram, writes the run ledger row and pushes the
 * run's metrics.  See docs/report.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <jansson.h>

#include "buf.h"
#include "cli.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "supabase.h"

#include "ledger.h"
#include "settings.h"
#include "tally.h"
#include "telegram.h"
#include "text.h"

#define TELEGRAM_LIMIT 4096

/* One run of dt-report: what main() sets up and its steps share. */
struct run {
	struct dt_rpt_config c;
	struct dt_rpt_tally tally;
	struct dt_http *h;
	struct dt_supabase *sb;
	json_t *schema;
	json_t *shards;         /* --merge-shards: the shards' state */
	json_t *summary;
	json_t *msgs;           /* the report's messages */
	const char *run_id;
	double t_start, t_end;
	int shard;              /* one shard of a scale-out run */
	int send;               /* send, record and push (not a dry run) */
	int sent, silent;
	int status;
};

/* Tallies the input and the stages expected to report. */
static void
read_input(struct run *r)
{
	struct dt_reader *rd;
	json_t *rec;
	int rc;

	if ((rd = dt_reader_new(r->c.files, r->c.nfiles,
	    (size_t)r->c.max_line)) == NULL) {
		dt_error("out of memory");
		r->status = DT_EXIT_UNAVAILABLE;
		return;
	}
	while ((rc = dt_reader_next(rd, &rec)) != DT_NDJSON_EOF) {
		if (rc == DT_NDJSON_RECORD)
			dt_rpt_tally_add(&r->tally, rec);
		else if (rc == DT_NDJSON_BAD)
			r->tally.bad_lines++;
		else
			r->status = DT_EXIT_DATAERR;
		json_decref(rec);
	}
	dt_reader_free(rd);
	if (r->c.expect != NULL)
		dt_rpt_tally_expect(&r->tally, r->c.expect);
}

/*
 * Writes the messages, separated by a "-- 8< --" line, to the file path
 * (NULL: stderr).  Returns 0, or -1 after logging.
 */
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

/*
 * --preflight: can the report be sent?  bad < 0: the settings are not.
 * Prints the one line and returns the exit status.
 */
static int
preflight(struct dt_rpt_config *c, int bad)
{
	struct dt_rpt_tg tg = {c->tg_url, c->tg_token, c->tg_chat,
	    c->tg_thread, c->timeout_s * 1000, 0};
	struct dt_http *h;
	char line[1200];
	int rc;

	if (bad < 0)
		return dt_preflight_line("telegram", DT_EXIT_CONFIG,
		    "the configuration is not valid (the lines above say "
		    "why)");
	if (c->tg_token == NULL)
		return dt_preflight_line("telegram", DT_EXIT_OK,
		    "not configured (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID): "
		    "the report goes to the log only");
	if ((h = dt_http_new("telegram")) == NULL)
		return dt_preflight_line("telegram", DT_EXIT_UNAVAILABLE,
		    "cannot set up HTTP");
	rc = dt_rpt_tg_preflight(h, &tg, line, sizeof(line));
	dt_http_free(h);
	return dt_preflight_line("telegram", rc, "%s", line);
}

/*
 * Reads the configuration and the schema, and sets up the Supabase client
 * and the tally.  With --check-config, only checks.  Returns 0, or -1
 * with r->status set.
 */
static int
setup(struct run *r)
{
	struct dt_rpt_config *c = &r->c;
	int rc = c->bad ? -1 : 0;

	if (c->schema != NULL) {
		json_error_t err;

		if ((r->schema = json_load_file(c->schema, 0, &err)) == NULL) {
			dt_error("DT_REPORT_SCHEMA: %s: %s", c->schema,
			    err.text);
			rc = -1;
		}
	}
	if (c->preflight) {
		r->status = preflight(c, rc);
		return 0;
	}
	if (c->check) {
		/* Input files are input, not configuration: not opened. */
		if (c->db && dt_supabase_check() > 0)
			rc = -1;
		r->status = rc < 0 ? DT_EXIT_CONFIG : DT_EXIT_OK;
		return 0;
	}
	if (rc < 0 || (c->db && (r->sb = dt_supabase_new()) == NULL)) {
		r->status = DT_EXIT_CONFIG;
		return -1;
	}
	/* In the pipeline dt-report starts when the other stages do. */
	r->t_start = (double)time(NULL);
	if (dt_rpt_tally_init(&r->tally, r->schema, (size_t)c->top,
	    c->topics_field) < 0) {
		r->status = DT_EXIT_UNAVAILABLE;
		return -1;
	}
	/* A shard's row is its report; shard 0's --merge-shards sends. */
	r->shard = c->merge == 0 && c->shards > 1;
	r->send = !c->dry_run && !r->shard;
	return 0;
}

/*
 * --merge-shards: merges the run's shard rows into the tally, noting in
 * r->shards which were merged and which are missing.
 */
static void
merge_shards(struct run *r)
{
	json_t *rows[1000] = {NULL}, *merged = json_array(),
	    *missing = json_array();
	struct dt_buf b = {0};
	long long k;

	dt_rpt_db_wait_shards(r->sb, r->c.run_id, r->c.merge, r->c.wait_s *
	    1000, r->c.stop_file, r->c.drain_s, rows);
	for (k = 0; k < r->c.merge; k++) {
		if (rows[k] != NULL && dt_rpt_tally_merge(&r->tally,
		    rows[k]) == 0)
			json_array_append_new(merged, json_integer(k));
		else {
			json_array_append_new(missing, json_integer(k));
			dt_buf_printf(&b, "%s%lld", b.len > 0 ? ", " : "", k);
		}
		json_decref(rows[k]);
	}
	snprintf(r->tally.run_id, sizeof(r->tally.run_id), "%s", r->c.run_id);
	if (b.len > 0)
		dt_warn("run %s: no finished ledger row from shard%s %s; the "
		    "report is partial", r->c.run_id,
		    json_array_size(missing) > 1 ? "s" : "", b.p);
	dt_buf_free(&b);
	r->shards = json_pack("{sIsoso}", "of", (json_int_t)r->c.merge,
	    "merged", merged, "missing", missing);
	if (r->tally.started_at[0] != '\0')
		r->c.started = NULL;
}

/* Writes t (seconds since the epoch) as "2024-05-01T10:00:00Z". */
static void
format_time(double t, char *buf, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * When the run started, as RFC 3339 text (own: room for it), or NULL
 * when unknown; sets r->t_start to match.
 */
static const char *
run_started(struct run *r, char *own, size_t len)
{
	const char *at = r->tally.started_at;
	struct stat st;

	if (r->c.started != NULL) {
		r->t_start = r->c.t_started;
		return r->c.started;
	}
	if (at[0] != '\0') {
		if (dt_rpt_parse_time(at, &r->t_start) == 0)
			return at;
		dt_warn("started_at: '%s' is not an RFC 3339 time", at);
	} else if (r->c.nfiles == 0 && fstat(STDIN_FILENO, &st) == 0 &&
	    S_ISFIFO(st.st_mode)) {
		format_time(r->t_start, own, len);
		return own;
	}
	return NULL;
}

/* Adds the shards' state, partial when a shard never finished. */
static void
add_shards(json_t *summary, json_t *shards)
{
	json_t *code = json_object_get(summary, "exit_code");

	if (json_array_size(json_object_get(shards, "missing")) > 0) {
		if (strcmp(json_string_value(json_object_get(summary,
		    "state")), "ok") == 0)
			json_object_set_new(summary, "state",
			    json_string("partial"));
		json_object_set_new(summary, "exit_code", json_integer(
		    dt_exit_worse((int)json_integer_value(code),
		    DT_EXIT_PARTIAL)));
	}
	json_object_set(summary, "shards", shards);
}

/*
 * Builds the run summary from the tally.  Returns 0, or -1 with
 * r->status set.
 */
static int
summarise(struct run *r)
{
	char finished[40], own_start[40];
	const char *started;

	r->run_id = r->c.run_id ? r->c.run_id : r->tally.run_id[0] ?
	    r->tally.run_id : NULL;
	r->t_end = r->c.finished ? r->c.t_finished : (double)time(NULL);
	format_time(r->t_end, finished, sizeof(finished));
	started = run_started(r, own_start, sizeof(own_start));
	if ((r->summary = dt_rpt_summary(&r->tally, r->run_id, started,
	    finished, started ? r->t_end - r->t_start : -1)) == NULL) {
		dt_error("out of memory");
		r->status = DT_EXIT_UNAVAILABLE;
		return -1;
	}
	if (r->shards != NULL)
		add_shards(r->summary, r->shards);
	if (r->shard)
		json_object_set_new(r->summary, "shard", json_pack("{sIsIso}",
		    "index", (json_int_t)r->c.shard_index, "of",
		    (json_int_t)r->c.shards, "internal",
		    dt_rpt_shard_json(&r->tally)));
	r->status = dt_exit_worse(r->status, (int)json_integer_value(
	    json_object_get(r->summary, "exit_code")));
	return 0;
}

/* Sends the messages to Telegram, or shows them when it is not to be. */
static void
deliver(struct run *r)
{
	struct dt_rpt_config *c = &r->c;
	int rc, empty;

	/* A clean run with nothing to do is not worth a message. */
	empty = c->notify == 0 && r->silent && json_integer_value(
	    json_object_get(r->summary, "records")) == 0;
	if (r->shard)
		dt_info("shard %lld of %lld: the run's report is sent by shard "
		    "0", c->shard_index, c->shards);
	else if (c->tg_token != NULL && r->send && empty)
		dt_info("nothing to report (no records, no problems): no "
		    "Telegram message under DT_REPORT_NOTIFY=problems");
	else if (c->tg_token != NULL && r->send) {
		struct dt_rpt_tg tg = {c->tg_url, c->tg_token, c->tg_chat,
		    c->tg_thread, c->timeout_s * 1000, c->retry_s * 1000};

		rc = dt_rpt_tg_send(r->h, &tg, r->msgs, r->silent, &r->sent);
		r->status = dt_exit_worse(r->status, rc);
		if (rc == DT_EXIT_OK)
			dt_info("report sent to Telegram (%d message%s, %s)",
			    r->sent, r->sent == 1 ? "" : "s", r->silent ?
			    "silently" : "with notification");
	} else {
		if (c->tg_token == NULL && !c->dry_run)
			dt_info("Telegram is not configured "
			    "(TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID); the "
			    "report follows");
		if (c->message_file == NULL)
			write_messages(NULL, r->msgs);
	}
}

/*
 * Adds what the database says, makes the messages and sends them, and
 * notes the report in the summary.  Returns 0, or -1 with r->status set.
 */
static int
send_report(struct run *r)
{
	struct dt_rpt_config *c = &r->c;
	int parts;

	if (r->send && (c->tg_token != NULL || c->pg_url != NULL) &&
	    (r->h = dt_http_new("dt-report")) == NULL) {
		r->status = dt_exit_worse(r->status, DT_EXIT_UNAVAILABLE);
		return -1;
	}
	if (r->sb != NULL && !r->shard)
		dt_rpt_db_read(r->sb, c->table, c->id_column, r->summary);
	if ((r->msgs = dt_rpt_messages(r->summary, c->lang,
	    TELEGRAM_LIMIT)) == NULL) {
		dt_error("out of memory");
		r->status = dt_exit_worse(r->status, DT_EXIT_UNAVAILABLE);
		return -1;
	}
	r->silent = c->notify == 2 || (c->notify == 0 && strcmp(
	    json_string_value(json_object_get(r->summary, "state")),
	    "ok") == 0);
	if (c->message_file != NULL && write_messages(c->message_file,
	    r->msgs) < 0)
		r->status = dt_exit_worse(r->status, DT_EXIT_IOERR);
	deliver(r);
	parts = (int)json_array_size(r->msgs);
	json_object_set_new(r->summary, "report", json_pack(
	    "{sssIsisbsb}", "lang", c->lang, "messages",
	    (json_int_t)(r->sent > 0 ? r->sent : 0), "parts", parts,
	    "sent", c->tg_token != NULL && r->send && r->sent == parts,
	    "notify", !r->silent));
	json_object_set_new(r->summary, "exit_code",
	    json_integer(r->status));
	return 0;
}

/* Writes the run's row in the ledger (best effort but for a shard). */
static void
record(struct run *r)
{
	char id[300];   /* a shard's row is "<run>/<index>" */
	int ok;

	if (r->sb == NULL || r->c.dry_run)
		return;
	if (r->run_id == NULL) {
		dt_warn("no run id (DT_RUN_ID or the records' run_id): the run "
		    "ledger is not written");
		return;
	}
	snprintf(id, sizeof(id), "%s/%lld", r->run_id, r->c.shard_index);
	ok = dt_rpt_db_upsert(r->sb, r->summary, r->shard ? id :
	    r->run_id) == 0;
	/* Best effort (docs/report.md), but for a shard's row. */
	json_object_set_new(r->summary, "ledger", json_string(ok ?
	    "written" : "failed"));
	if (!ok && r->shard)
		r->status = dt_exit_worse(r->status, DT_EXIT_TEMPFAIL);
}

/* Pushes the metrics (best effort, as the ledger: never the status). */
static void
push_metrics(struct run *r)
{
	int ok = r->status == DT_EXIT_OK || r->status == DT_EXIT_PARTIAL;

	if (r->c.pg_url == NULL || !r->send)
		return;
	ok = dt_rpt_metrics_push(r->h, r->c.pg_url, r->c.pg_job, r->summary,
	    ok, (long long)r->t_end, r->c.timeout_s * 1000) == 0;
	json_object_set_new(r->summary, "metrics", json_string(ok ?
	    "pushed" : "failed"));
}

/* Prints the summary, with the final exit status, on stdout. */
static void
print_summary(struct run *r)
{
	json_object_set_new(r->summary, "exit_code",
	    json_integer(r->status));
	if (json_dumpf(r->summary, stdout, JSON_COMPACT |
	    JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) < 0 ||
	    putchar('\n') == EOF)
		r->status = dt_exit_worse(r->status, DT_EXIT_IOERR);
}

int
main(int argc, char **argv)
{
	static struct run r;    /* the tally is 500 KiB: not on the stack */

	if (dt_cli_start("dt-report") < 0)
		return DT_EXIT_CONFIG;
	r.t_start = -1;
	if ((r.status = dt_rpt_parse_args(&r.c, argc, argv)) != 0)
		return r.status;
	if (setup(&r) == 0 && !r.c.check && !r.c.preflight) {
		if (r.c.merge > 0)
			merge_shards(&r);
		else
			read_input(&r);
		if (summarise(&r) == 0 && send_report(&r) == 0) {
			record(&r);
			push_metrics(&r);
			print_summary(&r);
		}
	}
	json_decref(r.msgs);
	json_decref(r.summary);
	json_decref(r.shards);
	json_decref(r.schema);
	dt_rpt_tally_free(&r.tally);
	dt_http_free(r.h);
	dt_supabase_free(r.sb);
	free(r.c.tg_token);
	return dt_cli_close_stdout(r.status);
}
