/*
 * shard.h: a shard's tally as JSON for the ledger, and merging shards back.
 */
#ifndef DT_RPT_SHARD_H
#define DT_RPT_SHARD_H

#include <jansson.h>

#include "tally.h"

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

#endif
