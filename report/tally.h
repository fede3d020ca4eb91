/*
 * tally.h: the run's tally (tally.c): what the records and stage reports
 * say, counted in fixed memory with a latency histogram and top-k
 * counters (counters.c); the summary made from it (summary.c).
 */
#ifndef DT_RPT_TALLY_H
#define DT_RPT_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * Latency histogram (440 KiB): values below 2048 are counted exactly;
 * above, every power of two is split into 1024 buckets, so a value read
 * back (the bucket's middle) is within 1/2048 of any value in the bucket.
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

void dt_rpt_hist_add(struct dt_rpt_hist *h, uint64_t v);

/*
 * Returns the nearest-rank q-quantile (0 < q <= 1) as the middle of its
 * bucket, clamped to [min, max]; 0 when nothing was counted.
 */
uint64_t dt_rpt_hist_quantile(const struct dt_rpt_hist *h, double q);

/*
 * Top-k of a stream of strings with cap counters: the Space-Saving
 * algorithm (Metwally, Agrawal, El Abbadi 2005).  Every string that
 * occurs more than total/cap times is kept; a kept string's count
 * exceeds its true count by at most its err (itself at most total/cap).
 */
#define DT_RPT_KEY_MAX 128

struct dt_rpt_topk_item {
	char key[DT_RPT_KEY_MAX + 1];
	uint64_t count;
	uint64_t err;
};

struct dt_rpt_topk {
	size_t cap, n;
	struct dt_rpt_topk_item *items;
	json_t *index;          /* key: its position in items */
	uint64_t total;         /* every occurrence counted */
	uint64_t evictions;
};

/* Sets up t with cap counters.  Returns 0, or -1 when out of memory. */
int dt_rpt_topk_init(struct dt_rpt_topk *t, size_t cap);
void dt_rpt_topk_free(struct dt_rpt_topk *t);

/*
 * Counts count occurrences of the key (len bytes, cut to DT_RPT_KEY_MAX),
 * known to within err (another summary's counter, when merging): a
 * counter found grows; a new key takes a free counter or else the
 * smallest, inheriting its count as error.
 */
void dt_rpt_topk_add(struct dt_rpt_topk *t, const char *key, size_t len,
    uint64_t count, uint64_t err);

/*
 * Fills out[0..k-1] with the k items of largest count (ties: by key) and
 * returns how many there are (<= k).
 */
size_t dt_rpt_topk_top(const struct dt_rpt_topk *t,
    const struct dt_rpt_topk_item **out, size_t k);

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

struct dt_rpt_tally {
	uint64_t records;
	uint64_t bad_lines;
	json_t *by_status;      /* name: count; the last "other" */
	json_t *by_error;       /* kind: count; the last "other" */
	uint64_t failed;        /* records counted as failed */
	uint64_t prompt_tokens, completion_tokens, total_tokens;
	double cost;
	uint64_t with_cost;
	struct dt_rpt_hist latency;
	uint64_t analyzed;      /* records with an analysis object */
	uint64_t reused;        /* stored with an analysis made before or
				 * for another row with the same text */
	int nfields;
	struct dt_rpt_field fields[DT_RPT_MAX_FIELDS];
	json_t *stages;         /* as in the summary, with "missing" */
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
 * Adds a stage, marked missing with status DT_EXIT_TEMPFAIL and the
 * message "<name> ended without its stage record (crashed or killed?)"
 * (also logged as an error), for every name in the comma-separated list
 * that sent no stage report.  Returns how many were missing.
 */
int dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/*
 * Adds a shard's summary s (borrowed; from the ledger) to the tally, set
 * up with the same schema: counts, tokens, cost and latency histograms
 * add, top-k counters merge (bounds adding), stages merge as their
 * reports would have, the earliest started_at is kept.  Returns 0, or
 * -1 (warned) when s has no shard part.
 */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/*
 * Builds the run summary (docs/report.md).  Returns a new reference;
 * NULL when out of memory.  started/finished are RFC 3339 strings or
 * NULL; duration_s < 0 means unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/*
 * What a shard's summary carries beyond the public summary so that the
 * shards can be merged exactly: the latency histogram's non-empty
 * buckets, every top-k counter, the sums behind the means.  Returns a
 * new reference.
 */
json_t *dt_rpt_shard_json(const struct dt_rpt_tally *t);

#endif
