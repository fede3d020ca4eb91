/*
 * settings.h: dt-report's options and environment (docs/report.md,
 * "Configuration").
 */
#ifndef DT_RPT_SETTINGS_H
#define DT_RPT_SETTINGS_H

#include <stddef.h>

struct dt_rpt_config {
	int check;
	int preflight;
	int bad;                /* a setting is bad (logged) */
	int dry_run;
	long long max_line;
	const char *lang;       /* "en" or "ru" */
	const char *message_file;
	long long merge;        /* --merge-shards: how many shards */
	long long shards, shard_index;
	long long wait_s, drain_s;
	const char *stop_file;
	const char *expect;     /* DT_EXPECT_STAGES */
	char **files;
	int nfiles;
	int notify;             /* 0 problems, 1 always, 2 never */
	long long top;
	const char *schema;
	const char *topics_field;
	long long retry_s;
	long long timeout_s;
	const char *run_id;
	const char *started;
	const char *finished;
	double t_started, t_finished;
	char *tg_token;
	const char *tg_chat;
	const char *tg_thread;
	const char *tg_url;
	int db;                 /* SUPABASE_URL is set */
	const char *table, *id_column;
	const char *pg_url;
	const char *pg_job;
};

/*
 * Reads the command line and the environment into c, from one table of
 * settings (lib/config.h), and checks them, logging one line per
 * problem and setting c->bad.  Returns 0, or the exit status to end with
 * after a usage error (-h and -V print and exit 0 here).  c's strings
 * are borrowed from the environment or static, but for tg_token (free
 * it).
 */
int dt_rpt_parse_args(struct dt_rpt_config *c, int argc, char **argv);

/*
 * Reads an RFC 3339 time ("2024-05-01T10:00:00Z", "...+03:00",
 * fractions) or seconds since the epoch into *out.  Returns 0 or -1.
 */
int dt_rpt_parse_time(const char *s, double *out);

#endif
