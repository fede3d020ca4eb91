/*
 * hist.h: the latency histogram of a run, in fixed memory.
 */
#ifndef DT_RPT_HIST_H
#define DT_RPT_HIST_H

#include <stddef.h>
#include <stdint.h>

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

#endif
