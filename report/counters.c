/*
 * counters.c: the latency histogram and the top-k counters (tally.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"
#include "utf8.h"

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
	int e;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->n);
	if (rank >= h->n)
		return h->max;
	if (rank <= 1)
		return h->min;
	for (i = 0; i < DT_RPT_HIST_BUCKETS; i++)
		if ((seen += h->count[i]) >= rank)
			break;
	lo = i;
	width = 1;
	if (i >= DT_RPT_HIST_EXACT) {
		i -= DT_RPT_HIST_EXACT;
		e = (int)(i / DT_RPT_HIST_SUB) + 1;
		lo = (uint64_t)(DT_RPT_HIST_SUB + i % DT_RPT_HIST_SUB) << e;
		width = (uint64_t)1 << e;
	}
	mid = lo + (width - 1) / 2;
	return mid < h->min ? h->min : mid > h->max ? h->max : mid;
}

int
dt_rpt_topk_init(struct dt_rpt_topk *t, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->cap = cap < 1 ? 1 : cap;
	if ((t->items = calloc(t->cap, sizeof(*t->items))) != NULL &&
	    (t->index = json_object()) != NULL)
		return 0;
	dt_rpt_topk_free(t);
	return -1;
}

void
dt_rpt_topk_free(struct dt_rpt_topk *t)
{
	if (t != NULL) {
		free(t->items);
		json_decref(t->index);
		memset(t, 0, sizeof(*t));
	}
}

void
dt_rpt_topk_add(struct dt_rpt_topk *t, const char *key, size_t len,
    uint64_t count, uint64_t err)
{
	struct dt_rpt_topk_item *it;
	json_t *at;
	char k[DT_RPT_KEY_MAX + 1];
	size_t i, min = 0;

	if (t->cap == 0 || count == 0)
		return;
	if (len > DT_RPT_KEY_MAX)
		len = utf8_cut(key, len, DT_RPT_KEY_MAX);
	memcpy(k, key, len);
	k[len] = '\0';
	t->total += count;
	if ((at = json_object_get(t->index, k)) != NULL) {
		it = &t->items[json_integer_value(at)];
		it->count += count;
		it->err += err;
		return;
	}
	if (t->n < t->cap) {
		i = t->n++;
		t->items[i].count = 0;
		t->items[i].err = err;
	} else {
		for (i = 1; i < t->n; i++)
			if (t->items[i].count < t->items[min].count)
				min = i;
		i = min;
		json_object_del(t->index, t->items[i].key);
		t->items[i].err = t->items[i].count + err;
		t->evictions++;
	}
	it = &t->items[i];
	it->count += count;
	memcpy(it->key, k, len + 1);
	json_object_set_new_nocheck(t->index, k, json_integer((json_int_t)i));
}

static int
item_cmp(const void *a, const void *b)
{
	const struct dt_rpt_topk_item *x = *(const void *const *)a;
	const struct dt_rpt_topk_item *y = *(const void *const *)b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

size_t
dt_rpt_topk_top(const struct dt_rpt_topk *t,
    const struct dt_rpt_topk_item **out, size_t k)
{
	const struct dt_rpt_topk_item **all;
	size_t i;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers */
	if (t->n == 0 || (all = malloc(t->n * sizeof(*all))) == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		all[i] = &t->items[i];
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers */
	qsort(all, t->n, sizeof(*all), item_cmp);
	for (i = 0; i < k && i < t->n; i++)
		out[i] = all[i];
	free(all);
	return i;
}
