/*
 * topk.c: the Space-Saving top-k counter (topk.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"
#include "utf8.h"

static uint32_t
fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	while (n-- > 0) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

int
dt_rpt_topk_init(struct dt_rpt_topk *t, size_t cap)
{
	size_t tsize = 8, i;

	memset(t, 0, sizeof(*t));
	if (cap < 1)
		cap = 1;
	while (tsize < 2 * cap)
		tsize *= 2;
	t->cap = cap;
	t->tmask = tsize - 1;
	t->items = calloc(cap, sizeof(*t->items));
	t->heap = calloc(cap, sizeof(*t->heap));
	t->table = malloc(tsize * sizeof(*t->table));
	if (t->items == NULL || t->heap == NULL || t->table == NULL) {
		dt_rpt_topk_free(t);
		return -1;
	}
	for (i = 0; i < tsize; i++)
		t->table[i] = -1;
	return 0;
}

void
dt_rpt_topk_free(struct dt_rpt_topk *t)
{
	if (t == NULL)
		return;
	free(t->items);
	free(t->heap);
	free(t->table);
	t->items = NULL;
	t->heap = NULL;
	t->table = NULL;
	t->n = t->cap = 0;
}

/*
 * Returns the table slot holding key, or the empty slot where it would
 * go; *found says which.
 */
static size_t
topk_find(const struct dt_rpt_topk *t, const char *key, size_t len,
    uint32_t hash, int *found)
{
	size_t i = hash & t->tmask;

	while (t->table[i] >= 0) {
		const struct dt_rpt_topk_item *it = &t->items[t->table[i]];

		if (it->hash == hash && strncmp(it->key, key, len) == 0 &&
		    it->key[len] == '\0') {
			*found = 1;
			return i;
		}
		i = (i + 1) & t->tmask;
	}
	*found = 0;
	return i;
}

/* Linear probing deletion by moving later entries back (no tombstones). */
static void
topk_unlink(struct dt_rpt_topk *t, size_t i)
{
	size_t j = i, k;

	for (;;) {
		t->table[i] = -1;
		for (;;) {
			j = (j + 1) & t->tmask;
			if (t->table[j] < 0)
				return;
			k = t->items[t->table[j]].hash & t->tmask;
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		t->table[i] = t->table[j];
		i = j;
	}
}

static void
heap_swap(struct dt_rpt_topk *t, size_t a, size_t b)
{
	uint32_t x = t->heap[a];

	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->items[t->heap[a]].heap = (uint32_t)a;
	t->items[t->heap[b]].heap = (uint32_t)b;
}

static uint64_t
heap_count(const struct dt_rpt_topk *t, size_t pos)
{
	return t->items[t->heap[pos]].count;
}

static void
heap_down(struct dt_rpt_topk *t, size_t pos)
{
	for (;;) {
		size_t l = 2 * pos + 1, r = l + 1, m = pos;

		if (l < t->n && heap_count(t, l) < heap_count(t, m))
			m = l;
		if (r < t->n && heap_count(t, r) < heap_count(t, m))
			m = r;
		if (m == pos)
			return;
		heap_swap(t, pos, m);
		pos = m;
	}
}

static void
heap_up(struct dt_rpt_topk *t, size_t pos)
{
	while (pos > 0 && heap_count(t, (pos - 1) / 2) > heap_count(t, pos)) {
		heap_swap(t, pos, (pos - 1) / 2);
		pos = (pos - 1) / 2;
	}
}

void
dt_rpt_topk_add(struct dt_rpt_topk *t, const char *key, size_t len)
{
	dt_rpt_topk_add_n(t, key, len, 1, 0);
}

/*
 * Space-Saving with weights: a counter found grows by count (and its
 * error by err); a new key takes a free counter or, when they are all
 * taken, the smallest one, inheriting its count as error.  With count 1
 * and err 0 this is the classic algorithm; with a shard's counters it
 * merges two summaries, the bounds adding up.
 */
void
dt_rpt_topk_add_n(struct dt_rpt_topk *t, const char *key, size_t len,
    uint64_t count, uint64_t err)
{
	struct dt_rpt_topk_item *it;
	uint32_t hash, idx;
	size_t slot;
	int found, evicted = 0;

	if (t->cap == 0 || count == 0)
		return;
	/* Keys come checked from the scanner: only a long one needs cutting. */
	if (len > DT_RPT_KEY_MAX)
		len = utf8_cut(key, len, DT_RPT_KEY_MAX);
	hash = fnv1a(key, len);
	t->total += count;
	slot = topk_find(t, key, len, hash, &found);
	if (found) {
		it = &t->items[t->table[slot]];
		it->count += count;
		it->err += err;
		heap_down(t, it->heap);
		return;
	}
	if (t->n < t->cap) {
		idx = (uint32_t)t->n++;
		it = &t->items[idx];
		it->count = count;
		it->err = err;
		it->heap = idx;
		t->heap[idx] = idx;
	} else {
		/* Replace the smallest counter: the new key inherits it. */
		int f;

		idx = t->heap[0];
		it = &t->items[idx];
		topk_unlink(t, topk_find(t, it->key, strlen(it->key),
		    it->hash, &f));
		slot = topk_find(t, key, len, hash, &found);
		it->err = it->count + err;
		it->count += count;
		t->evictions++;
		evicted = 1;
	}
	memcpy(it->key, key, len);
	it->key[len] = '\0';
	it->hash = hash;
	t->table[slot] = (int32_t)idx;
	if (evicted)
		heap_down(t, 0);
	else
		heap_up(t, it->heap);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct dt_rpt_topk_item *const *pa = a, *const *pb = b;
	const struct dt_rpt_topk_item *x = *pa, *y = *pb;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

size_t
dt_rpt_topk_top(const struct dt_rpt_topk *t,
    const struct dt_rpt_topk_item **out, size_t k)
{
	const struct dt_rpt_topk_item **all;
	size_t i, n = t->n;

	if (n == 0 || k == 0)
		return 0;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
	if ((all = malloc(n * sizeof(*all))) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		all[i] = &t->items[i];
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
	qsort(all, n, sizeof(*all), item_cmp);
	if (k > n)
		k = n;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
	memcpy(out, all, k * sizeof(*out));
	free(all);
	return k;
}
