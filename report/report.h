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

/*
 * n holds the counts (dt_rpt_tally_init lists them); a shard's summary
 * carries a copy as "shard.internal", and merging adds them.
 */
struct dt_rpt_tally {
	json_t *n;
	json_t *stages;         /* name: the stage as in the summary */
	uint64_t bad_lines;
	char run_id[128];
	int mixed_runs;
	char started_at[40];    /* earliest stage "started_at", if any */
	size_t top;             /* topics to report */
};

/*
 * Sets up a tally for the fields of the analysis schema (borrowed; NULL:
 * dt-analyze's default fields), listing the top topics of topics_field.
 * Returns 0, or -1 after logging.  Free with dt_rpt_tally_free().
 */
int dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field);
void dt_rpt_tally_free(struct dt_rpt_tally *t);

/* Counts a record (borrowed): any stage's output, or a stage report. */
void dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec);

/*
 * Adds each stage of the comma-separated list that sent no report as
 * missing (status DT_EXIT_TEMPFAIL, "<name> ended without its stage
 * record (crashed or killed?)", also logged).  Returns how many.
 */
int dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/*
 * Adds a shard's summary s (borrowed) as if its records and reports had
 * come here.  Returns 0, or -1 (warned) when s has no shard part.
 */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/*
 * Returns the run summary (docs/report.md), new, or NULL when out of
 * memory.  started and finished: RFC 3339 or NULL; duration_s < 0:
 * unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/*
 * Normalises a topic (s, n bytes) into buf (len > DT_RPT_KEY_MAX): white
 * space trimmed and made single spaces, control and invisible characters
 * dropped, Latin and Cyrillic capitals made small, cut to DT_RPT_KEY_MAX
 * bytes.  Returns the length (0: nothing left).
 */
size_t dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len);

/*
 * Copies at most max_chars characters of the UTF-8 string s into buf
 * (len bytes): control, line-separator and bidi characters made spaces,
 * invalid bytes U+FFFD, a cut string ended with "…".  Returns buf.
 */
char *dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len);

/* Telegram's length of the HTML text after parsing, in UTF-16 units. */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * The report on the summary in lang ("en" or "ru"), split between lines
 * into whole HTML messages of at most limit UTF-16 units, those after
 * the first numbered.  Returns a new array of strings, or NULL.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

/* Where the report goes, and how long to try: dt-report's settings. */
struct dt_rpt_tg {
	const char *api_url;    /* without trailing slash */
	char *token;
	const char *chat_id;
	const char *thread_id;  /* NULL or digits */
	long long timeout_s;    /* per request */
	long long retry_s;      /* the most time spent waiting to retry */
};

/*
 * Sends the messages in order, the first with notification unless
 * silent, stopping at the first that cannot be sent; *sent is how many
 * were.  Returns 0, or after logging why: DT_EXIT_UNAVAILABLE (outage),
 * DT_EXIT_TEMPFAIL (flood control outlasted retry_s) or DT_EXIT_CONFIG
 * (Telegram refused the request).
 */
int dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg,
    json_t *msgs, int silent, int *sent);

/*
 * --preflight: unless bad, asks getMe and getChat once each and prints
 * one line: what was found, or what to fix.  Returns 0, DT_EXIT_CONFIG
 * or DT_EXIT_UNAVAILABLE.
 */
int dt_rpt_tg_preflight(const struct dt_rpt_tg *tg, int bad);

/*
 * Adds to the summary s "backlog" (rpc/dt_backlog) and "previous" (the
 * latest other finished run but a shard's, with the "delta" from it);
 * what cannot be read is left out after logging.
 */
void dt_rpt_db_read(struct dt_supabase *sb, const char *table,
    const char *id_column, json_t *s);

/*
 * --merge-shards: polls the ledger until the n rows "<run_id>/<k>" are
 * finished or wait_ms are over (drain_s more once stop_file exists),
 * merging each into t.  Returns a new {"of", "merged", "missing"}.
 */
json_t *dt_rpt_db_merge_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, struct dt_rpt_tally *t);

/* Upserts the row run_id from the summary s.  Returns 0 or -1 (logged). */
int dt_rpt_db_upsert(struct dt_supabase *sb, json_t *s, const char *run_id);

/*
 * POSTs the summary's metrics to url/metrics/job/<job>, the last-success
 * time (now) only when success is set.  Returns 0 or -1 (logged).
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms);

#endif
