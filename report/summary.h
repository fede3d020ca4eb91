/*
 * summary.h: the run summary built from the tally, and a shard's own
 * part of it (merged back by dt_rpt_tally_merge()).
 */
#ifndef DT_RPT_SUMMARY_H
#define DT_RPT_SUMMARY_H

#include <jansson.h>

#include "tally.h"

/*
 * Builds the run summary (see docs/report.md).  Returns a new reference;
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
