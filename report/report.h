/*
 * report.h: what the files of dt-report share.
 *
 * stats.c    bounded-memory aggregates: latency histogram, top-k counter,
 *            the per-run tally and the summary JSON built from it
 * format.c   the Telegram message (HTML) made from the summary, in
 *            English or Russian, split under Telegram's length limit
 * telegram.c sendMessage with Telegram's flood-control handling
 * ledger.c   the Supabase run ledger, backlog and previous run
 * metrics.c  the Prometheus Pushgateway push
 */
#ifndef DT_REPORT_H
#define DT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct dt_http;

/*
 * Latency histogram in fixed memory (440 KiB): values below 2048 are
 * counted exactly; above, every power of two is split into 1024 buckets,
 * so a value read back (the bucket's middle) is within 1/2048 (0.05%) of
 * any value in the bucket.  Covers the whole uint64_t range.
 */
#define DT_RPT_HIST_BITS 10
#define DT_RPT_HIST_SUB ((size_t)1 << DT_RPT_HIST_BITS)
#define DT_RPT_HIST_EXACT (2 * DT_RPT_HIST_SUB)
#define DT_RPT_HIST_BUCKETS (DT_RPT_HIST_EXACT + \
	(64 - DT_RPT_HIST_BITS - 1) * DT_RPT_HIST_SUB)

struct dt_rpt_hist {
	uint64_t n;
	uint64_t min, max;
	uint64_t count[DT_RPT_HIST_BUCKETS];
};

/* Counts the value v. */
void dt_rpt_hist_add(struct dt_rpt_hist *h, uint64_t v);

/*
 * Returns the nearest-rank q-quantile (0 < q <= 1) as the middle of its
 * bucket, clamped to [min, max]; 0 when nothing was counted.
 */
uint64_t dt_rpt_hist_quantile(const struct dt_rpt_hist *h, double q);

/*
 * Top-k of a stream of strings in fixed memory: the Space-Saving
 * algorithm (Metwally, Agrawal, El Abbadi 2005) with cap counters.  Every
 * string that occurs more than total/cap times is kept; a kept string's
 * count is an upper bound, exceeding its true count by at most its err
 * (which is at most total/cap).  Keys are cut to DT_RPT_KEY_MAX bytes.
 */
#define DT_RPT_KEY_MAX 128

struct dt_rpt_topk_item {
	char key[DT_RPT_KEY_MAX + 1];
	uint64_t count;
	uint64_t err;
	uint32_t hash;
	uint32_t heap;          /* position in the min-heap */
};

struct dt_rpt_topk {
	size_t cap, n;
	struct dt_rpt_topk_item *items;
	uint32_t *heap;         /* item indices, min-heap by count */
	int32_t *table;         /* open addressing: item index or -1 */
	size_t tmask;
	uint64_t total;         /* every increment */
	uint64_t evictions;
};

/* Sets up t with cap counters.  Returns 0, or -1 when out of memory. */
int dt_rpt_topk_init(struct dt_rpt_topk *t, size_t cap);
void dt_rpt_topk_free(struct dt_rpt_topk *t);

/* Counts one occurrence of the key (len bytes, cut to DT_RPT_KEY_MAX). */
void dt_rpt_topk_add(struct dt_rpt_topk *t, const char *key, size_t len);

/*
 * Counts count occurrences of the key known to within err (another
 * summary's counter, when merging).  Adds count to total.
 */
void dt_rpt_topk_add_n(struct dt_rpt_topk *t, const char *key, size_t len,
    uint64_t count, uint64_t err);

/*
 * Fills out[0..k-1] with pointers to the k items of largest count
 * (ties: by key), and returns how many there are (<= k).
 */
size_t dt_rpt_topk_top(const struct dt_rpt_topk *t,
    const struct dt_rpt_topk_item **out, size_t k);

/*
 * Normalises a topic (s, n bytes) into buf (len >= DT_RPT_KEY_MAX + 1):
 * white space trimmed and runs of it made one space, control and
 * invisible characters dropped, Latin and Cyrillic capitals made small,
 * cut to DT_RPT_KEY_MAX bytes.  Returns the length (0: nothing left).
 */
size_t dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len);

/* What the tally learnt from the schema about one analysis field. */
enum {
	DT_RPT_FIELD_ENUM = 1,  /* string (or array of strings) with enum */
	DT_RPT_FIELD_LABEL,     /* short string code, e.g. language */
	DT_RPT_FIELD_TOPICS,    /* array of free strings: top-k */
	DT_RPT_FIELD_ITEMS,     /* array of free text: counted only */
	DT_RPT_FIELD_MEAN       /* bounded number: mean */
};

#define DT_RPT_MAX_FIELDS 16
#define DT_RPT_MAX_ENUM 32
#define DT_RPT_MAX_STATUS 16
#define DT_RPT_MAX_KINDS 16
#define DT_RPT_MAX_STAGES 8
#define DT_RPT_MAX_MESSAGES 4
#define DT_RPT_MAX_COUNTS 16

struct dt_rpt_field {
	char name[64];
	int kind;
	int nvalues;
	char values[DT_RPT_MAX_ENUM][48];
	uint64_t counts[DT_RPT_MAX_ENUM];
	uint64_t other;         /* a value not in the enum */
	uint64_t present;       /* records that had the field */
	uint64_t items;         /* ITEMS: items in all records */
	double sum;             /* MEAN */
	struct dt_rpt_topk topk; /* LABEL, TOPICS */
};

/* One upstream stage, from its stage report records. */
struct dt_rpt_stage {
	char name[32];
	int reports;
	int status;             /* the worst status seen */
	int interrupted;
	int missing;            /* expected, but no stage report came */
	int nmessages;
	char messages[DT_RPT_MAX_MESSAGES][240];
	int ncounts;
	char count_names[DT_RPT_MAX_COUNTS][32];
	double counts[DT_RPT_MAX_COUNTS];
};

struct dt_rpt_named {
	char name[32];
	uint64_t n;
};

struct dt_rpt_tally {
	uint64_t records;
	uint64_t bad_lines;
	int nstatus;
	struct dt_rpt_named status[DT_RPT_MAX_STATUS]; /* last: "other" */
	int nkinds;
	struct dt_rpt_named kinds[DT_RPT_MAX_KINDS];   /* last: "other" */
	uint64_t failed;        /* records counted as failed */
	uint64_t prompt_tokens, completion_tokens, total_tokens;
	double cost;
	uint64_t with_cost;
	struct dt_rpt_hist latency;
	uint64_t analyzed;      /* records with an analysis object */
	int nfields;
	struct dt_rpt_field fields[DT_RPT_MAX_FIELDS];
	int nstages;
	struct dt_rpt_stage stages[DT_RPT_MAX_STAGES];
	char run_id[128];
	int mixed_runs;
	char started_at[40];    /* earliest stage "started_at", if any */
	size_t top;             /* topics to report */
};

/*
 * Sets up a tally.  schema is the analysis JSON schema (borrowed; NULL:
 * the default fields sentiment, language, topics, action_items,
 * confidence); top is how many topics the summary lists; topics_field
 * names the field whose strings are ranked.  Returns 0, or -1 after
 * logging.  Free with dt_rpt_tally_free().
 */
int dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field);
void dt_rpt_tally_free(struct dt_rpt_tally *t);

/*
 * Counts one record (borrowed): a status record, any stage's output, or
 * a stage report ({"stage": ..., no "id"}).  Members of an unexpected
 * type count as absent.
 */
void dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec);

/*
 * The run's state from what was tallied: "ok", "partial" or "failed", and
 * the exit status the records and stages call for.
 */
const char *dt_rpt_tally_state(const struct dt_rpt_tally *t, int *status);

/*
 * Builds the run summary (see docs/report.md).  Returns a new reference;
 * NULL when out of memory.  started/finished are RFC 3339 strings or
 * NULL; duration_s < 0 means unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/*
 * Adds a stage, marked missing with status DT_EXIT_TEMPFAIL and the
 * message "<name> ended without its stage record (crashed or killed?)"
 * (also logged as an error), for every name in the comma-separated list
 * that sent no stage report.  Returns how many were missing.
 */
int dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/*
 * What a shard's summary carries beyond the public summary so that the
 * shards can be merged exactly: the latency histogram's non-empty
 * buckets, every top-k counter, the sums behind the means.  Returns a
 * new reference.
 */
json_t *dt_rpt_shard_json(const struct dt_rpt_tally *t);

/*
 * Adds a shard's summary s (borrowed; from the ledger) to the tally, set
 * up with the same schema: counts, tokens and cost add; latency
 * histograms add; top-k counters merge (Space-Saving, bounds adding);
 * stages merge as their reports would have.  The earliest started_at is
 * kept.  Returns 0, or -1 (warned) when s has no shard part.
 */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/* format.c */

/* Appends s to the growing buffer with HTML's <, >, & and " escaped. */
struct dt_rpt_buf {
	char *s;
	size_t len, cap;
	int oom;
};
void dt_rpt_buf_add(struct dt_rpt_buf *b, const char *s, size_t n);
void dt_rpt_buf_puts(struct dt_rpt_buf *b, const char *s);
void dt_rpt_buf_printf(struct dt_rpt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dt_rpt_buf_html(struct dt_rpt_buf *b, const char *s, size_t n);
void dt_rpt_buf_free(struct dt_rpt_buf *b);

/*
 * Copies at most max_chars characters of the UTF-8 string s into buf
 * (len bytes), making control, line-separator and bidi-override
 * characters spaces and invalid bytes U+FFFD, and ending a cut string
 * with "…".  Returns buf.
 */
char *dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len);

/*
 * The length Telegram gives the text after parsing the HTML html (tags
 * not counted, an entity one character), in UTF-16 code units.
 */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * Builds the report for summary in lang ("en" or "ru") and splits it at
 * line boundaries into messages of at most limit UTF-16 units (after
 * parsing), every tag closed on the line that opened it.  Returns a new
 * NULL-terminated array of new strings (dt_rpt_messages_free), or NULL
 * when out of memory.
 */
char **dt_rpt_messages(json_t *summary, const char *lang, size_t limit);
void dt_rpt_messages_free(char **msgs);

/* telegram.c */

struct dt_rpt_tg {
	const char *api_url;    /* without trailing slash */
	const char *token;
	const char *chat_id;
	const char *thread_id;  /* NULL or digits */
	long timeout_ms;
	long budget_ms;         /* total time to spend waiting on retries */
};

/*
 * Checks a chat id: a whole number (negative for groups) or @username.
 * Returns 0 or -1.
 */
int dt_rpt_tg_chat_ok(const char *chat);

/*
 * Sends the messages in order; the first with notification unless
 * silent, the rest silently.  Stops at the first message that cannot be
 * sent.  Returns 0 when all were sent, else the exit status to report
 * (DT_EXIT_UNAVAILABLE for an outage, DT_EXIT_CONFIG for a request
 * Telegram refuses) after logging why, quoting Telegram's description.
 * *sent is how many were sent.
 */
int dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg,
    char **msgs, int silent, int *sent);

/*
 * The preflight: getMe (is the token a bot's?) and getChat for the chat
 * id (can the bot see the chat?), one try each, sending no message.
 * Writes one sentence into line: what was found, or what to fix, naming
 * the variable and quoting Telegram's description.  Returns 0 when both
 * answered ok, DT_EXIT_CONFIG when Telegram refused the token or the
 * chat, DT_EXIT_UNAVAILABLE when it could not be reached.
 */
int dt_rpt_tg_preflight(struct dt_http *h, const struct dt_rpt_tg *tg,
    char *line, size_t len);

/* ledger.c */

struct dt_supabase;

/*
 * Asks the database for the backlog (POST /rest/v1/rpc/dt_backlog) of the
 * source table.  Returns a new reference to the object
 * {"unclaimed":N,"leased":N,"failed":N,"done":N}, or NULL after logging.
 */
json_t *dt_rpt_db_backlog(struct dt_supabase *sb, const char *table,
    const char *id_column);

/*
 * Reads the latest finished run in the ledger other than run_id (NULL:
 * any).  Returns 0 with *row a new reference (json_null() when there is
 * none), or -1 after logging.
 */
int dt_rpt_db_previous(struct dt_supabase *sb, const char *run_id,
    json_t **row);

/*
 * Reads the finished shard rows of the run ("<run_id>/<index>"): returns a
 * new reference to an array of {"run_id","finished_at","summary"}, or
 * NULL after logging.  The caller matches the run ids exactly (LIKE's
 * '_' matches any character).
 */
json_t *dt_rpt_db_shards(struct dt_supabase *sb, const char *run_id);

/* Upserts the ledger row (borrowed).  Returns 0 or -1 after logging. */
int dt_rpt_db_upsert(struct dt_supabase *sb, json_t *row);

/* metrics.c */

/*
 * Writes the run's metrics in the Prometheus text format into b, from
 * the summary; the last-success time only when success is set.
 */
void dt_rpt_metrics_text(struct dt_rpt_buf *b, json_t *summary, int success,
    long long now);

/*
 * Pushes them to url/metrics/job/<job> with POST (so that a failed run
 * leaves the last success time of an earlier one in place).  Returns 0
 * or -1 after logging.
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    const char *text, long timeout_ms);

#endif
