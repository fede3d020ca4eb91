/*
 * settings.c: dt-report's options and environment (settings.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"

#include "settings.h"
#include "telegram.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif

static const char usage[] =
    "usage: dt-report [-hnqVv] [-L bytes] [-l lang] [-m file] [file ...]\n"
    "       dt-report -M shards [-hnqVv] [-l lang] [-m file]\n"
    "       dt-report --check-config | --preflight [option ...]\n"
    "\n"
    "Reads status records (or any stage's output) from the files or stdin\n"
    "and prints one run-summary JSON object on stdout.  Sends the report to\n"
    "Telegram, upserts the run ledger row in Supabase and pushes metrics to\n"
    "a Pushgateway when those are configured.\n"
    "\n"
    "      --check-config       check the environment and options, read the\n"
    "                           secret files, read no input and connect to\n"
    "                           nothing; print nothing and exit 0 when valid,\n"
    "                           else one line per problem and exit 78\n"
    "  -h, --help               print this help and exit\n"
    "  -L, --max-line n         longest input line in bytes (DT_MAX_LINE,\n"
    "                           1048576)\n"
    "  -l, --lang en|ru         report language (DT_REPORT_LANG, en)\n"
    "  -M, --merge-shards N     read no input: wait for the N shard rows of\n"
    "                           the run (DT_RUN_ID) in the ledger, merge\n"
    "                           them and report the whole run\n"
    "  -m, --message-file FILE  also write the report's messages to FILE\n"
    "  -n, --dry-run            send and write nothing; print the messages\n"
    "                           on stderr (or to FILE)\n"
    "      --preflight          read no input, send no message: ask Telegram\n"
    "                           about the bot (getMe) and the chat (getChat)\n"
    "                           and print one line, \"telegram: ready: ...\"\n"
    "                           or \"telegram: not ready: ...\" naming the\n"
    "                           variable to fix; exit 0, 78 (refused) or 69\n"
    "                           (unreachable)\n"
    "  -q, --quiet              log less\n"
    "  -V, --version            print the version and exit\n"
    "  -v, --verbose            log more (-vv: trace HTTP)\n"
    "\n"
    "Environment: TELEGRAM_BOT_TOKEN[_FILE], TELEGRAM_CHAT_ID,\n"
    "TELEGRAM_THREAD_ID, TELEGRAM_API_URL, SUPABASE_URL, SUPABASE_KEY[_FILE],\n"
    "DT_PUSHGATEWAY_URL, DT_PUSHGATEWAY_JOB, DT_REPORT_NOTIFY, DT_REPORT_TOP,\n"
    "DT_REPORT_SCHEMA (else DT_SCHEMA_FILE), DT_REPORT_TOPICS_FIELD,\n"
    "DT_REPORT_RETRY_SECONDS, DT_MAX_LINE, DT_EXPECT_STAGES,\n"
    "DT_SHARDS, DT_SHARD_INDEX, DT_SHARD_WAIT_SECONDS, DT_STOP_FILE,\n"
    "DT_RUN_ID, DT_RUN_STARTED_AT, DT_RUN_FINISHED_AT, TIMEOUT_SECONDS.\n"
    "\n"
    "Exit status: the most severe of the run's own (the worst status the\n"
    "stages reported; 1 when records failed) and the report's: 69 when\n"
    "Telegram is unavailable, 75 after flood control outlasted the retry\n"
    "limit (or a shard's ledger row could not be written), 78 when Telegram\n"
    "refuses the configuration (bad token or chat).  The ledger row and the\n"
    "metrics are best effort: a failure is a warning, not an exit status.\n";

/* The long-only options --check-config and --preflight. */
#define OPT_CHECK_CONFIG 256
#define OPT_PREFLIGHT 257

int
dt_rpt_parse_args(struct dt_rpt_config *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
		{"dry-run", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{"lang", required_argument, NULL, 'l'},
		{"max-line", required_argument, NULL, 'L'},
		{"merge-shards", required_argument, NULL, 'M'},
		{"message-file", required_argument, NULL, 'm'},
		{"preflight", no_argument, NULL, OPT_PREFLIGHT},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((ch = getopt_long(argc, argv, "hL:l:M:m:nqVv", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case OPT_CHECK_CONFIG:
			c->check = 1;
			break;
		case OPT_PREFLIGHT:
			c->preflight = 1;
			break;
		case 'L':
			c->max_line_arg = optarg;
			break;
		case 'h':
			exit(dt_cli_help(usage));
		case 'l':
			c->lang = optarg;
			break;
		case 'M':
			c->merge_arg = optarg;
			break;
		case 'm':
			c->message_file = optarg;
			break;
		case 'n':
			c->dry_run = 1;
			break;
		case 'q':
			dt_log_adjust(-1);
			break;
		case 'V':
			dt_cli_version();
			exit(dt_cli_close_stdout(DT_EXIT_OK));
		case 'v':
			dt_log_adjust(1);
			break;
		default:
			return dt_cli_usage_error(NULL);
		}
	}
	c->files = argv + optind;
	c->nfiles = argc - optind;
	if (c->lang != NULL && strcmp(c->lang, "en") != 0 &&
	    strcmp(c->lang, "ru") != 0)
		return dt_cli_usage_error("--lang: '%s' is not one of en, ru",
		    c->lang);
	if (c->max_line_arg != NULL && dt_parse_ll("--max-line",
	    c->max_line_arg, 1024, 1073741824, &c->max_line) < 0)
		return dt_cli_usage_error(NULL);
	if (c->merge_arg != NULL && dt_parse_ll("--merge-shards",
	    c->merge_arg, 1, 1000, &c->merge) < 0)
		return dt_cli_usage_error(NULL);
	if (c->merge_arg != NULL && c->nfiles > 0)
		return dt_cli_usage_error("--merge-shards reads no input "
		    "files");
	if (c->preflight && (c->nfiles > 0 || c->merge_arg != NULL ||
	    c->check))
		return dt_cli_usage_error("--preflight reads no input and "
		    "goes with no --check-config or --merge-shards");
	return 0;
}

/* Strips one trailing slash from a URL in the environment. */
static const char *
env_url(const char *name, const char *def, char *buf, size_t len)
{
	const char *v = dt_env(name, def);
	size_t n;

	if (v == NULL)
		return NULL;
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
		dt_error("%s: '%s' is not an http(s) URL", name, v);
		return "";
	}
	snprintf(buf, len, "%s", v);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return buf;
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

void
dt_rpt_format_time(double t, char *buf, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads the report's own settings.  Returns 1 when any is bad, else 0. */
static int
read_report(struct dt_rpt_config *c)
{
	const char *v;
	int bad = 0;

	if (c->lang == NULL)
		c->lang = dt_env("DT_REPORT_LANG", "en");
	if (strcmp(c->lang, "en") != 0 && strcmp(c->lang, "ru") != 0) {
		dt_error("DT_REPORT_LANG: '%s' is not one of en, ru", c->lang);
		bad = 1;
	}
	v = dt_env("DT_REPORT_NOTIFY", "problems");
	if (strcmp(v, "problems") == 0)
		c->notify = 0;
	else if (strcmp(v, "always") == 0)
		c->notify = 1;
	else if (strcmp(v, "never") == 0)
		c->notify = -1;
	else {
		dt_error("DT_REPORT_NOTIFY: '%s' is not one of problems, "
		    "always, never", v);
		bad = 1;
	}
	if (dt_env_ll("DT_REPORT_TOP", 10, 1, 1000, &c->top) < 0 ||
	    dt_env_ll("DT_REPORT_RETRY_SECONDS", 120, 0, 3600,
	    &c->retry_s) < 0 ||
	    dt_env_ll("TIMEOUT_SECONDS", 300, 1, 86400, &c->timeout_s) < 0)
		bad = 1;
	if (c->timeout_s > 60)
		c->timeout_s = 60;
	if (c->max_line_arg == NULL && dt_env_ll("DT_MAX_LINE",
	    (long long)DT_NDJSON_MAX_LINE_DEFAULT, 1024, 1073741824,
	    &c->max_line) < 0)
		bad = 1;
	/* The schema dt-analyze uses, unless told otherwise. */
	c->schema = dt_env("DT_REPORT_SCHEMA", dt_env("DT_SCHEMA_FILE", NULL));
	if (c->schema == NULL && access(dt_data_file("schema.json"), R_OK) == 0)
		c->schema = dt_data_file("schema.json");
	c->topics_field = dt_env("DT_REPORT_TOPICS_FIELD", "topics");
	c->expect = dt_env("DT_EXPECT_STAGES", NULL);
	if (dt_env_ll("DT_SHARDS", 1, 1, 1000, &c->shards) < 0 ||
	    dt_env_ll("DT_SHARD_INDEX", 0, 0, 999, &c->shard_index) < 0 ||
	    dt_env_ll("DT_SHARD_WAIT_SECONDS", 600, 0, 86400,
	    &c->wait_s) < 0 ||
	    dt_env_ll("DT_DRAIN_SECONDS", 60, 0, 3600, &c->drain_s) < 0)
		bad = 1;
	else if (c->shard_index >= c->shards) {
		dt_error("DT_SHARD_INDEX: %lld is not below DT_SHARDS (%lld)",
		    c->shard_index, c->shards);
		bad = 1;
	}
	c->stop_file = dt_env("DT_STOP_FILE", NULL);
	c->run_id = dt_env("DT_RUN_ID", NULL);
	c->started = dt_env("DT_RUN_STARTED_AT", NULL);
	c->finished = dt_env("DT_RUN_FINISHED_AT", NULL);
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

/*
 * Reads where the report goes: Telegram, Supabase and the Pushgateway.
 * Returns 1 when any setting is bad, else 0.
 */
static int
read_delivery(struct dt_rpt_config *c)
{
	static char tg_url[1024], pg_url[1024];
	int bad = 0;

	if (dt_env_secret("TELEGRAM_BOT_TOKEN", &c->tg_token) < 0)
		bad = 1;
	c->tg_chat = dt_env("TELEGRAM_CHAT_ID", NULL);
	c->tg_thread = dt_env("TELEGRAM_THREAD_ID", NULL);
	c->tg_url = env_url("TELEGRAM_API_URL", "https://api.telegram.org",
	    tg_url, sizeof(tg_url));
	if (*c->tg_url == '\0')
		bad = 1;
	if ((c->tg_token == NULL) != (c->tg_chat == NULL)) {
		dt_error("%s is set but %s is not: set both to send the report",
		    c->tg_token ? "TELEGRAM_BOT_TOKEN" : "TELEGRAM_CHAT_ID",
		    c->tg_token ? "TELEGRAM_CHAT_ID" : "TELEGRAM_BOT_TOKEN");
		bad = 1;
	}
	if (c->tg_chat != NULL && dt_rpt_tg_chat_ok(c->tg_chat) < 0) {
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
	c->table = dt_env("DT_SOURCE_TABLE", "messages");
	c->id_column = dt_env("DT_SOURCE_ID", "id");
	c->pg_url = env_url("DT_PUSHGATEWAY_URL", NULL, pg_url,
	    sizeof(pg_url));
	if (c->pg_url != NULL && *c->pg_url == '\0')
		bad = 1;
	c->pg_job = dt_env("DT_PUSHGATEWAY_JOB", "dt");
	if (strspn(c->pg_job, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
	    "TUVWXYZ0123456789_.-") != strlen(c->pg_job) ||
	    strlen(c->pg_job) > 100) {
		dt_error("DT_PUSHGATEWAY_JOB: '%s' may only have letters, "
		    "digits, '_', '.' and '-'", c->pg_job);
		bad = 1;
	}
	return bad;
}

/* Reads every record into the tally.  Returns the input's exit status. */

int
dt_rpt_read_config(struct dt_rpt_config *c)
{
	int bad = read_report(c);

	bad |= read_delivery(c);
	return bad ? -1 : 0;
}
