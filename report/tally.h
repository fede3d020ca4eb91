/*
 * tally.h: the run's tally (tally.c): what the records, stage reports and
 * shards' summaries say, counted exactly; the summary made from it
 * (summary.c).
 */
#ifndef DT_RPT_TALLY_H
#define DT_RPT_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The longest topic or label counted, in bytes. */
#define DT_RPT_KEY_MAX 128

/*
 * n holds the counts, and is what a shard's summary carries as
 * "shard.internal", so that merging shards is adding: "records",
 * "failed", "analyzed", "reused", "with_cost" (integers), "cost",
 * "by_status" and "by_error" (name: count), "tokens" ({"prompt",
 * "completion", "total"}), "latency_ms" (every latency) and "fields"
 * (name: {"kind", "records", and "counts" (value: count), "items" or
 * "sum" as the kind has them}).
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
 * Adds a shard's summary s (borrowed; from the ledger) to the tally:
 * its counts add, its latencies join, its stages merge as their reports
 * would have, the earliest started_at is kept.  Returns 0, or -1
 * (warned) when s has no shard part.
 */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/*
 * Builds the run summary (docs/report.md).  Returns a new reference;
 * NULL when out of memory.  started/finished are RFC 3339 strings or
 * NULL; duration_s < 0 means unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/* A shard's part for an exact merge: a new copy of t->n. */
json_t *dt_rpt_shard_json(const struct dt_rpt_tally *t);

#endif
