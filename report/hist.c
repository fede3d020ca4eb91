/*
 * hist.c: the latency histogram (hist.h).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

static size_t
hist_bucket(uint64_t v)
{
	int e;

	if (v < DT_RPT_HIST_EXACT)
		return (size_t)v;
	e = 63 - __builtin_clzll(v);    /* > DT_RPT_HIST_BITS */
	return DT_RPT_HIST_EXACT +
	    (size_t)(e - DT_RPT_HIST_BITS - 1) * DT_RPT_HIST_SUB +
	    (size_t)((v >> (e - DT_RPT_HIST_BITS)) & (DT_RPT_HIST_SUB - 1));
}

static void
hist_bounds(size_t i, uint64_t *lo, uint64_t *width)
{
	int e;

	if (i < DT_RPT_HIST_EXACT) {
		*lo = i;
		*width = 1;
		return;
	}
	i -= DT_RPT_HIST_EXACT;
	e = (int)(i / DT_RPT_HIST_SUB) + DT_RPT_HIST_BITS + 1;
	*lo = (uint64_t)(DT_RPT_HIST_SUB + i % DT_RPT_HIST_SUB) <<
	    (e - DT_RPT_HIST_BITS);
	*width = (uint64_t)1 << (e - DT_RPT_HIST_BITS);
}

void
dt_rpt_hist_add(struct dt_rpt_hist *h, uint64_t v)
{
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->count[hist_bucket(v)]++;
}

uint64_t
dt_rpt_hist_quantile(const struct dt_rpt_hist *h, double q)
{
	uint64_t rank, seen = 0, lo, width, mid;
	size_t i;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->n);
	if (rank < 1)
		rank = 1;
	if (rank >= h->n)
		return h->max;
	if (rank == 1)
		return h->min;
	for (i = 0; i < DT_RPT_HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank)
			break;
	}
	hist_bounds(i, &lo, &width);
	mid = lo + (width - 1) / 2;
	if (mid < h->min)
		mid = h->min;
	if (mid > h->max)
		mid = h->max;
	return mid;
}
