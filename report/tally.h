/*
 * tally.h: the run's tally (tally.c), counted exactly from the records,
 * stage reports and shards' summaries, and the summary made from it
 * (summary.c).
 */
#ifndef DT_RPT_TALLY_H
#define DT_RPT_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DT_RPT_KEY_MAX 128      /* bytes of a topic or label kept */

/*
 * n holds the counts (tally.c's dt_rpt_tally_init lists them); a shard's
 * summary carries a copy as "shard.internal", and merging adds them.
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
 * Sets up a tally for the fields of the analysis schema (borrowed;
 * NULL: dt-analyze's default fields), listing top topics of the field
 * topics_field.  Returns 0, or -1 after logging.  Free with
 * dt_rpt_tally_free().
 */
int dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field);
void dt_rpt_tally_free(struct dt_rpt_tally *t);

/*
 * Counts a record (borrowed): any stage's output, or a stage report
 * ({"stage": ..., no "id"}).  Members of an unexpected type are absent.
 */
void dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec);

/*
 * Adds every stage of the comma-separated list that sent no report, as
 * missing with status DT_EXIT_TEMPFAIL and the message "<name> ended
 * without its stage record (crashed or killed?)", also logged as an
 * error.  Returns how many were missing.
 */
int dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/*
 * Adds a shard's summary s (borrowed; from the ledger): its counts add,
 * its stages merge as their reports would have, the earliest start is
 * kept.  Returns 0, or -1 (warned) when s has no shard part.
 */
int dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s);

/*
 * Returns the run summary (docs/report.md), a new reference, or NULL
 * when out of memory.  started and finished are RFC 3339 or NULL;
 * duration_s < 0 is unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

/* Returns a shard's part of its summary: a copy of t->n. */
json_t *dt_rpt_shard_json(const struct dt_rpt_tally *t);

#endif
