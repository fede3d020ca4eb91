/*
 * report.h: dt-report's parts: the tally and the summary (tally.c), the
 * Telegram report made (format.c) and sent (telegram.c), the run ledger
 * and the metrics (ledger.c).
 */
#ifndef DT_RPT_REPORT_H
#define DT_RPT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"

#define DT_RPT_KEY_MAX 128      /* bytes of a topic or label kept */

struct dt_http;
struct dt_supabase;

/* n: the counts, copied to a shard's summary as "shard.internal". */
struct dt_rpt_tally {
	json_t *n;
	json_t *stages;         /* name: the stage as in the summary */
	uint64_t bad_lines;
	char run_id[128];
	int mixed_runs;
	char started_at[40];    /* earliest stage "started_at", if any */
	size_t top;             /* topics to report */
};

/* Sets up a tally for the schema's fields (NULL: dt-analyze's); 0 or -1. */
int dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field);
void dt_rpt_tally_free(struct dt_rpt_tally *t);

/* Counts a record (borrowed): any stage's output, or a stage report. */
void dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec);

/* Adds each listed stage that sent no report as missing (logged). */
void dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/* Adds a shard's summary.  Returns 0, or -1 (warned): no shard part. */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/* The run summary (docs/report.md), new; duration_s < 0: unknown. */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/*
 * Normalises a topic (s, n bytes) into buf: white space trimmed and single,
 * invisible characters dropped, capitals small.  Returns the length.
 */
size_t dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len);

/*
 * Copies at most max_chars characters of s into buf, control and bidi
 * characters made spaces, a cut string ended with "…".  Returns buf.
 */
char *dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len);

/* Telegram's length of the HTML text after parsing, in UTF-16 units. */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * The report in lang ("en", "ru") as messages of at most limit UTF-16
 * units, split between lines.  Returns a new array, or NULL.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

/* Where the report goes, and how long to try: dt-report's settings. */
struct dt_rpt_tg {
	const char *api_url;    /* without trailing slash */
	char *token;
	const char *chat_id;
	long long thread_id;    /* 0: none */
	long long timeout_s;    /* per request */
	long long retry_s;      /* the most time spent waiting to retry */
};

/*
 * Sends the messages until one fails (*sent: how many were).  Returns 0,
 * or (logged) DT_EXIT_UNAVAILABLE, DT_EXIT_TEMPFAIL or DT_EXIT_CONFIG.
 */
int dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg,
    json_t *msgs, int silent, int *sent);

/* --preflight: asks getMe and getChat, prints one line; an exit status. */
int dt_rpt_tg_preflight(const struct dt_rpt_tg *tg, int bad);

/* Adds "backlog" and "previous" to the summary s, or logs why not. */
void dt_rpt_db_read(struct dt_supabase *sb, const char *table,
    const char *id_column, json_t *s);

/* --merge-shards: merges the n rows "<run_id>/<k>" as they finish. */
json_t *dt_rpt_db_merge_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, struct dt_rpt_tally *t);

/* Upserts the row run_id from the summary s.  Returns 0 or -1 (logged). */
int dt_rpt_db_upsert(struct dt_supabase *sb, json_t *s, const char *run_id);

/* POSTs the summary's metrics to url/metrics/job/<job>.  0 or -1. */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms);

#endif
