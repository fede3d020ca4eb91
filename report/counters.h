/*
 * counters.h: the fixed-memory counters of the tally: the latency
 * histogram and the most frequent strings (docs/report.md).
 */
#ifndef DT_RPT_COUNTERS_H
#define DT_RPT_COUNTERS_H

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

#endif
