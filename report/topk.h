/*
 * topk.h: the most frequent strings of a stream (topics, languages), in
 * fixed memory.
 */
#ifndef DT_RPT_TOPK_H
#define DT_RPT_TOPK_H

#include <stddef.h>
#include <stdint.h>

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

#endif
