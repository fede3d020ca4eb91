/*
 * settings.c: dt-report's options and environment (settings.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"

#include "settings.h"
#include "telegram.h"

static struct dt_rpt_config cfg;
static int lang;             /* DT_REPORT_LANG: 0 en, 1 ru */

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
    "Exit status: the most severe of the run's own (the worst status the\n"
    "stages reported; 1 when records failed) and the report's: 69 when\n"
    "Telegram is unavailable, 75 after flood control outlasted the retry\n"
    "limit (or a shard's ledger row could not be written), 78 when Telegram\n"
    "refuses the configuration (bad token or chat).  The ledger row and the\n"
    "metrics are best effort: a failure is a warning, not an exit status.\n";

static const struct dt_opt opts[] = {
	{.ch = 'L', .flag = "max-line", .env = "DT_MAX_LINE",
	    .type = DT_OPT_SHARED, .out = &cfg.max_line},
	{0, "lang", "DT_REPORT_LANG", DT_OPT_CHOICE, &lang, "en", 0, 0, "en|ru",
	    "report language"},
	{'M', "merge-shards", NULL, DT_OPT_INT, &cfg.merge, NULL, 1, 1000, "N",
	    "read no input: wait for the N shard rows of the run (DT_RUN_ID) "
	    "in the ledger, merge them and report the whole run"},
	{0, "message-file", NULL, DT_OPT_TEXT, &cfg.message_file, NULL, 0, 0,
	    "FILE", "also write the report's messages to FILE"},
	{'n', "dry-run", NULL, DT_OPT_SWITCH, &cfg.dry_run, NULL, 0, 0, NULL,
	    "send and write nothing; print the messages on stderr (or to "
	    "FILE)"},
	{0, "preflight", NULL, DT_OPT_SWITCH, &cfg.preflight, NULL, 0, 0, NULL,
	    "read no input, send no message: ask Telegram about the bot "
	    "(getMe) and the chat (getChat) and print one line, \"telegram: "
	    "ready: ...\" or \"telegram: not ready: ...\" naming the variable "
	    "to fix; exit 0, 78 (refused) or 69 (unreachable)"},
	{0, NULL, "TELEGRAM_BOT_TOKEN", DT_OPT_SECRET, &cfg.tg_token, NULL, 0,
	    0, NULL, "the bot's token; without it the report is printed, not "
	    "sent"},
	{0, NULL, "TELEGRAM_CHAT_ID", DT_OPT_TEXT, &cfg.tg_chat, NULL, 0, 0,
	    NULL, "the chat: a number, a negative group id or @channel"},
	{0, NULL, "TELEGRAM_THREAD_ID", DT_OPT_TEXT, &cfg.tg_thread, NULL, 0, 0,
	    NULL, "the forum topic"},
	{0, NULL, "TELEGRAM_API_URL", DT_OPT_TEXT, &cfg.tg_url,
	    "https://api.telegram.org", 0, 0, NULL, "Bot API base URL"},
	{0, NULL, "DT_REPORT_NOTIFY", DT_OPT_CHOICE, &cfg.notify, "problems", 0,
	    0, "problems|always|never", "problems: alerts notify, clean runs "
	    "are silent, an empty clean run sends nothing; always; never: "
	    "every report is silent"},
	{0, NULL, "DT_REPORT_TOP", DT_OPT_INT, &cfg.top, "10", 1, 1000, NULL,
	    "values shown of each field"},
	{0, NULL, "DT_REPORT_SCHEMA", DT_OPT_TEXT, &cfg.schema, NULL, 0, 0,
	    NULL, "the analysis schema the report reads its fields from (else "
	    "DT_SCHEMA_FILE, else dt-analyze's)"},
	{0, NULL, "DT_REPORT_TOPICS_FIELD", DT_OPT_TEXT, &cfg.topics_field,
	    "topics", 0, 0, NULL, "the field whose values are the top topics"},
	{0, NULL, "DT_REPORT_RETRY_SECONDS", DT_OPT_INT, &cfg.retry_s, "120", 0,
	    3600, NULL, "how long to wait out Telegram's flood control"},
	DT_OPT_USE("TIMEOUT_SECONDS", &cfg.timeout_s),
	{0, NULL, "DT_PUSHGATEWAY_URL", DT_OPT_TEXT, &cfg.pg_url, NULL, 0, 0,
	    NULL, "push the run's metrics to this Prometheus Pushgateway"},
	{0, NULL, "DT_PUSHGATEWAY_JOB", DT_OPT_TEXT, &cfg.pg_job, "dt", 0, 0,
	    NULL, "the metrics' job name"},
	{0, NULL, "DT_SOURCE_TABLE", DT_OPT_TEXT, &cfg.table, "messages", 0, 0,
	    NULL, "the source table, for the ledger"},
	{0, NULL, "DT_SOURCE_ID", DT_OPT_TEXT, &cfg.id_column, "id", 0, 0, NULL,
	    "its id column"},
	{0, NULL, "DT_EXPECT_STAGES", DT_OPT_TEXT, &cfg.expect, NULL, 0, 0,
	    NULL, "stages whose missing stage record fails the run "
	    "(dt-entrypoint sets it)"},
	DT_OPT_USE("DT_RUN_ID", &cfg.run_id),
	{0, NULL, "DT_RUN_STARTED_AT", DT_OPT_TEXT, &cfg.started, NULL, 0, 0,
	    NULL, "when the run started (RFC 3339)"},
	{0, NULL, "DT_RUN_FINISHED_AT", DT_OPT_TEXT, &cfg.finished, NULL, 0, 0,
	    NULL, "when it finished (RFC 3339; default now)"},
	DT_OPT_USE("DT_SHARDS", &cfg.shards),
	DT_OPT_USE("DT_SHARD_INDEX", &cfg.shard_index),
	{0, NULL, "DT_SHARD_WAIT_SECONDS", DT_OPT_INT, &cfg.wait_s, "600", 0,
	    86400, NULL, "how long --merge-shards waits for the other shards"},
	DT_OPT_USE("DT_DRAIN_SECONDS", &cfg.drain_s),
	DT_OPT_USE("DT_STOP_FILE", &cfg.stop_file),
	DT_OPT_SUPABASE,
};

static const struct dt_cmd cmd = {usage_head, usage_tail, opts,
    sizeof(opts) / sizeof(opts[0])};

/*
 * Checks that the URL in *url (from the variable name) is http(s) and
 * copies it into buf without its trailing slashes.  Returns 0 or -1.
 */
static int
check_url(const char *name, const char **url, char *buf, size_t len)
{
	size_t n;

	if (*url == NULL)
		return 0;
	if (strncmp(*url, "http://", 7) != 0 &&
	    strncmp(*url, "https://", 8) != 0) {
		dt_error("%s: '%s' is not an http(s) URL", name, *url);
		return -1;
	}
	snprintf(buf, len, "%s", *url);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	*url = buf;
	return 0;
}

int
dt_rpt_parse_time(const char *s, double *out)
{
	struct tm tm;
	const char *p;
	char *end;
	double frac = 0;
	long off = 0;

	errno = 0;
	*out = strtod(s, &end);
	if (end != s && *end == '\0' && errno == 0)
		return 0;
	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL &&
	    (p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.') {
		frac = strtod(p, &end);
		p = end;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if ((*p == '+' || *p == '-') && strlen(p) >= 3) {
		int h = (p[1] - '0') * 10 + (p[2] - '0'), m = 0;

		if (p[3] == ':' && strlen(p) >= 6)
			m = (p[4] - '0') * 10 + (p[5] - '0');
		off = (h * 60 + m) * 60L * (*p == '-' ? -1 : 1);
		p += p[3] == ':' ? 6 : 3;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	*out = (double)timegm(&tm) - (double)off + frac;
	return 0;
}

/*
 * Checks what the table cannot: the times, the shard, the schema's
 * default.  Returns 1 when anything is bad, else 0.
 */
static int
check_report(struct dt_rpt_config *c)
{
	int bad = 0;

	if (c->timeout_s > 60)
		c->timeout_s = 60;
	/* The schema dt-analyze uses, unless told otherwise. */
	if (c->schema == NULL)
		c->schema = dt_env("DT_SCHEMA_FILE", NULL);
	if (c->schema == NULL && access(dt_data_file("schema.json"), R_OK) == 0)
		c->schema = dt_data_file("schema.json");
	if (c->shard_index >= c->shards) {
		dt_error("DT_SHARD_INDEX: %lld is not below DT_SHARDS (%lld)",
		    c->shard_index, c->shards);
		bad = 1;
	}
	if (c->started != NULL && dt_rpt_parse_time(c->started,
	    &c->t_started) < 0) {
		dt_error("DT_RUN_STARTED_AT: '%s' is not an RFC 3339 time",
		    c->started);
		bad = 1;
	}
	if (c->finished != NULL && dt_rpt_parse_time(c->finished,
	    &c->t_finished) < 0) {
		dt_error("DT_RUN_FINISHED_AT: '%s' is not an RFC 3339 time",
		    c->finished);
		bad = 1;
	}
	return bad;
}

/* Whether chat is a whole number (negative for groups) or @username. */
static int
chat_ok(const char *chat)
{
	size_t n = strlen(chat), digits;

	if (chat[0] == '@')
		return n >= 5 && n <= 33 && isalpha((unsigned char)chat[1]) &&
		    strspn(chat + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
		    "OPQRSTUVWXYZ0123456789_") == n - 1 ? 0 : -1;
	digits = strspn(chat + (chat[0] == '-'), "0123456789");
	return digits > 0 && digits <= 19 && chat[(chat[0] == '-') +
	    digits] == '\0' ? 0 : -1;
}

/*
 * Checks where the report goes: Telegram, Supabase and the Pushgateway.
 * Returns 1 when any setting is bad, else 0.
 */
static int
check_delivery(struct dt_rpt_config *c)
{
	static char tg_url[1024], pg_url[1024];
	int bad = 0;

	if (check_url("TELEGRAM_API_URL", &c->tg_url, tg_url,
	    sizeof(tg_url)) < 0)
		bad = 1;
	if ((c->tg_token == NULL) != (c->tg_chat == NULL)) {
		dt_error("%s is set but %s is not: set both to send the report",
		    c->tg_token ? "TELEGRAM_BOT_TOKEN" : "TELEGRAM_CHAT_ID",
		    c->tg_token ? "TELEGRAM_CHAT_ID" : "TELEGRAM_BOT_TOKEN");
		bad = 1;
	}
	if (c->tg_chat != NULL && chat_ok(c->tg_chat) < 0) {
		dt_error("TELEGRAM_CHAT_ID: '%s' is neither a chat number nor "
		    "an @channel name", c->tg_chat);
		bad = 1;
	}
	if (c->tg_thread != NULL) {
		long long t;

		if (dt_parse_ll("TELEGRAM_THREAD_ID", c->tg_thread, 1,
		    2147483647LL, &t) < 0)
			bad = 1;
	}

	c->db = dt_env("SUPABASE_URL", NULL) != NULL;
	if (c->merge > 0 && (!c->db || c->run_id == NULL)) {
		dt_error("--merge-shards reads the run ledger: it needs "
		    "SUPABASE_URL, SUPABASE_KEY and DT_RUN_ID");
		bad = 1;
	}
	if (check_url("DT_PUSHGATEWAY_URL", &c->pg_url, pg_url,
	    sizeof(pg_url)) < 0)
		bad = 1;
	if (strspn(c->pg_job, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
	    "TUVWXYZ0123456789_.-") != strlen(c->pg_job) ||
	    strlen(c->pg_job) > 100) {
		dt_error("DT_PUSHGATEWAY_JOB: '%s' may only have letters, "
		    "digits, '_', '.' and '-'", c->pg_job);
		bad = 1;
	}
	return bad;
}

int
dt_rpt_parse_args(struct dt_rpt_config *c, int argc, char **argv)
{
	int rc = dt_opts_parse(&cmd, argc, argv, &cfg.check);

	if (rc != 0 && rc != DT_EXIT_CONFIG)
		return rc;
	cfg.bad = rc != 0;      /* the table logged it */
	cfg.lang = lang == 1 ? "ru" : "en";
	cfg.files = argv + optind;
	cfg.nfiles = argc - optind;
	*c = cfg;
	if (c->merge > 0 && c->nfiles > 0)
		return dt_cli_usage_error("--merge-shards reads no input "
		    "files");
	if (c->preflight && (c->nfiles > 0 || c->merge > 0 || c->check))
		return dt_cli_usage_error("--preflight reads no input and "
		    "goes with no --check-config or --merge-shards");
	c->bad |= check_report(c);
	c->bad |= check_delivery(c);
	return 0;
}
