/*
 * stats.c: the run's aggregates in memory that does not grow with the
 * number of records.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "report.h"
#include "utf8.h"

/* Latency histogram. */

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

/* Space-Saving top-k. */

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

/*
 * Decodes one UTF-8 character at s (n bytes left).  Returns its code
 * point and stores its length in *len; an invalid sequence is U+FFFD of
 * length 1.
 */
static uint32_t
utf8_next(const unsigned char *s, size_t n, size_t *len)
{
	uint32_t c = s[0], min;
	size_t k, i;

	*len = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xC2 && c <= 0xDF) {
		k = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		k = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		k = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0xFFFD;
	if (n < k)
		return 0xFFFD;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0xFFFD;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0xFFFD;
	*len = k;
	return c;
}

/* 1: white space; 2: invisible control to drop; 0: ordinary. */
static int
char_class(uint32_t c)
{
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v' || c == 0xA0 || c == 0x1680 ||
	    (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	    c == 0x202F || c == 0x205F || c == 0x3000)
		return 1;
	if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x200B ||
	    c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xFEFF)
		return 2;
	return 0;
}

static uint32_t
fold(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

size_t
dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, k, max;
	int space = 0;

	max = len - 1 < DT_RPT_KEY_MAX ? len - 1 : DT_RPT_KEY_MAX;
	while (n > 0) {
		uint32_t c;
		char tmp[4];
		size_t m;

		/* Plain ASCII letters and digits, the common case. */
		if (*p > 0x20 && *p < 0x7F) {
			if (o + space + 1 > max)
				break;
			if (space)
				buf[o++] = ' ';
			space = 0;
			buf[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 :
			    *p);
			p++;
			n--;
			continue;
		}
		c = utf8_next(p, n, &k);
		p += k;
		n -= k;
		switch (char_class(c)) {
		case 1:
			space = o > 0;
			continue;
		case 2:
			continue;
		}
		m = utf8_put(tmp, fold(c));
		if (o + space + m > max)
			break;
		if (space)
			buf[o++] = ' ';
		space = 0;
		memcpy(buf + o, tmp, m);
		o += m;
	}
	buf[o] = '\0';
	return o;
}

/* The clipped copy the report shows: see report.h. */
char *
dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, k, chars = 0;

	while (n > 0) {
		uint32_t c = utf8_next(p, n, &k);
		char tmp[4];
		size_t m;

		if (chars == max_chars || o + 4 + 3 + 1 > len) {
			memcpy(buf + o, "\xE2\x80\xA6", 3); /* … */
			o += 3;
			break;
		}
		p += k;
		n -= k;
		if (char_class(c) != 0)
			c = ' ';
		m = utf8_put(tmp, c);
		memcpy(buf + o, tmp, m);
		o += m;
		chars++;
	}
	buf[o] = '\0';
	return buf;
}

/* The tally. */

static const char *const default_sentiment[] = {"positive", "neutral",
    "negative", "mixed"};

static struct dt_rpt_field *
add_field(struct dt_rpt_tally *t, const char *name, int kind)
{
	struct dt_rpt_field *f;

	if (t->nfields >= DT_RPT_MAX_FIELDS)
		return NULL;
	f = &t->fields[t->nfields++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->kind = kind;
	return f;
}

static int
add_enum_values(struct dt_rpt_field *f, json_t *values)
{
	size_t i;
	json_t *v;

	json_array_foreach(values, i, v) {
		if (!json_is_string(v) || f->nvalues >= DT_RPT_MAX_ENUM)
			continue;
		snprintf(f->values[f->nvalues++], sizeof(f->values[0]), "%s",
		    json_string_value(v));
	}
	return 0;
}

/* Decides from a property's schema what the report does with it. */
static int
field_kind(const char *name, json_t *prop, const char *topics_field,
    json_t **enumv)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *items, *ml;

	*enumv = json_object_get(prop, "enum");
	if (type == NULL)
		return 0;
	if (strcmp(type, "string") == 0) {
		if (json_is_array(*enumv))
			return DT_RPT_FIELD_ENUM;
		/* A short code such as a language: its values are labels. */
		ml = json_object_get(prop, "maxLength");
		if (json_is_integer(ml) && json_integer_value(ml) <= 16)
			return DT_RPT_FIELD_LABEL;
		return 0;       /* free text: never reported */
	}
	if (strcmp(type, "array") == 0) {
		items = json_object_get(prop, "items");
		type = json_string_value(json_object_get(items, "type"));
		if (type == NULL || strcmp(type, "string") != 0)
			return 0;
		*enumv = json_object_get(items, "enum");
		if (json_is_array(*enumv))
			return DT_RPT_FIELD_ENUM;
		if (strcmp(name, topics_field) == 0)
			return DT_RPT_FIELD_TOPICS;
		return DT_RPT_FIELD_ITEMS;
	}
	if ((strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) &&
	    json_is_number(json_object_get(prop, "minimum")) &&
	    json_is_number(json_object_get(prop, "maximum")))
		return DT_RPT_FIELD_MEAN;
	return 0;
}

int
dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field)
{
	struct dt_rpt_field *f;
	const char *name;
	json_t *props, *prop;
	int i;

	memset(t, 0, sizeof(*t));
	t->top = top;
	props = json_object_get(schema, "properties");
	if (json_is_object(props)) {
		json_object_foreach(props, name, prop) {
			json_t *enumv;
			int kind = field_kind(name, prop, topics_field, &enumv);

			if (kind == 0)
				continue;
			if ((f = add_field(t, name, kind)) == NULL) {
				dt_warn("schema: more than %d fields to "
				    "report; '%s' and later ones are left out",
				    DT_RPT_MAX_FIELDS, name);
				break;
			}
			if (kind == DT_RPT_FIELD_ENUM)
				add_enum_values(f, enumv);
		}
	} else {
		f = add_field(t, "sentiment", DT_RPT_FIELD_ENUM);
		for (i = 0; i < 4; i++)
			snprintf(f->values[f->nvalues++], sizeof(f->values[0]),
			    "%s", default_sentiment[i]);
		add_field(t, "language", DT_RPT_FIELD_LABEL);
		add_field(t, topics_field, DT_RPT_FIELD_TOPICS);
		add_field(t, "action_items", DT_RPT_FIELD_ITEMS);
		add_field(t, "confidence", DT_RPT_FIELD_MEAN);
	}
	for (i = 0; i < t->nfields; i++) {
		size_t cap;

		f = &t->fields[i];
		if (f->kind == DT_RPT_FIELD_TOPICS)
			cap = top * 10 < 100 ? 100 : top * 10;
		else if (f->kind == DT_RPT_FIELD_LABEL)
			cap = 64;
		else
			continue;
		if (dt_rpt_topk_init(&f->topk, cap) < 0) {
			dt_error("out of memory");
			dt_rpt_tally_free(t);
			return -1;
		}
	}
	return 0;
}

void
dt_rpt_tally_free(struct dt_rpt_tally *t)
{
	int i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nfields; i++)
		dt_rpt_topk_free(&t->fields[i].topk);
}

/* Finds or adds name in a small table whose last slot is "other". */
static struct dt_rpt_named *
named(struct dt_rpt_named *tab, int *n, int max, const char *name,
    size_t len)
{
	char clean[sizeof(tab->name)];
	int i;

	dt_rpt_topic_norm(name, len, clean, sizeof(clean));
	if (clean[0] == '\0')
		snprintf(clean, sizeof(clean), "other");
	for (i = 0; i < *n; i++)
		if (strcmp(tab[i].name, clean) == 0)
			return &tab[i];
	for (i = 0; *n >= max - 1 && i < *n; i++)
		if (strcmp(tab[i].name, "other") == 0)
			return &tab[i];
	if (*n == max - 1) {
		snprintf(tab[*n].name, sizeof(tab->name), "other");
		(*n)++;
	}
	if (*n == max)
		return &tab[max - 1];
	snprintf(tab[*n].name, sizeof(tab->name), "%s", clean);
	return &tab[(*n)++];
}

static uint64_t
count_of(double v)
{
	return v > 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

/* Sets *out to v's value and returns 1 when v is a number, else 0. */
static int
number(json_t *v, double *out)
{
	if (!json_is_number(v))
		return 0;
	*out = json_number_value(v);
	return 1;
}

/* Adds v to *sum when v is a positive number. */
static void
add_positive(double *sum, json_t *v)
{
	double x;

	if (number(v, &x) && x > 0)
		*sum += x;
}

/*
 * A cost: a number, or an object with "total_cost" or else the sum of
 * its "*_cost" members.  Returns 1 with *out set, or 0 when v has none.
 */
static int
cost_of(json_t *v, double *out)
{
	const char *k;
	json_t *m;
	double sum = 0, x;
	int has = 0;

	if (number(v, out))
		return 1;
	if (!json_is_object(v))
		return 0;
	if (number(json_object_get(v, "total_cost"), out))
		return 1;
	json_object_foreach(v, k, m) {
		size_t n = strlen(k);

		if (n > 5 && strcmp(k + n - 5, "_cost") == 0 &&
		    number(m, &x)) {
			sum += x;
			has = 1;
		}
	}
	*out = sum;
	return has;
}

static void
tally_usage(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *u = json_object_get(rec, "usage");
	double prompt = 0, completion = 0, total, cost;
	uint64_t p, c;

	if (!json_is_object(u))
		u = NULL;
	add_positive(&prompt, json_object_get(u, "prompt_tokens"));
	add_positive(&prompt, json_object_get(u, "input_tokens"));
	add_positive(&completion, json_object_get(u, "completion_tokens"));
	add_positive(&completion, json_object_get(u, "output_tokens"));
	p = count_of(prompt);
	c = count_of(completion);
	t->prompt_tokens += p;
	t->completion_tokens += c;
	t->total_tokens += number(json_object_get(u, "total_tokens"), &total) ?
	    count_of(total) : p + c;
	if (((cost_of(json_object_get(u, "cost"), &cost) ||
	    cost_of(json_object_get(u, "cost_usd"), &cost)) && cost >= 0) ||
	    (cost_of(json_object_get(rec, "cost_usd"), &cost) && cost >= 0)) {
		t->cost += cost;
		t->with_cost++;
	}
}

static void
tally_topic(struct dt_rpt_field *f, json_t *v)
{
	char key[DT_RPT_KEY_MAX + 1];
	size_t n;

	if (json_is_string(v) && (n = dt_rpt_topic_norm(json_string_value(v),
	    json_string_length(v), key, sizeof(key))) > 0)
		dt_rpt_topk_add(&f->topk, key, n);
}

static void
tally_enum(struct dt_rpt_field *f, json_t *v)
{
	size_t n = json_string_length(v);
	int i;

	if (!json_is_string(v))
		return;
	for (i = 0; i < f->nvalues; i++)
		if (strlen(f->values[i]) == n &&
		    memcmp(f->values[i], json_string_value(v), n) == 0) {
			f->counts[i]++;
			return;
		}
	f->other++;
}

/*
 * Counts one analysis field's value v.  Returns 1 when v has the type
 * the field's kind counts, else 0.
 */
static int
tally_value(struct dt_rpt_field *f, json_t *v)
{
	size_t j;
	json_t *item;

	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		if (json_is_string(v))
			tally_enum(f, v);
		else if (json_is_array(v))
			json_array_foreach(v, j, item)
				tally_enum(f, item);
		else
			return 0;
		return 1;
	case DT_RPT_FIELD_LABEL:
		if (!json_is_string(v))
			return 0;
		tally_topic(f, v);
		return 1;
	case DT_RPT_FIELD_TOPICS:
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, j, item)
			tally_topic(f, item);
		return 1;
	case DT_RPT_FIELD_ITEMS:
		if (!json_is_array(v) || json_array_size(v) == 0)
			return 0;
		f->items += json_array_size(v);
		return 1;
	case DT_RPT_FIELD_MEAN:
		if (!json_is_number(v))
			return 0;
		f->sum += json_number_value(v);
		return 1;
	}
	return 0;
}

static void
tally_analysis(struct dt_rpt_tally *t, json_t *analysis)
{
	int i;

	t->analyzed++;
	for (i = 0; i < t->nfields; i++) {
		struct dt_rpt_field *f = &t->fields[i];

		if (tally_value(f, json_object_get(analysis, f->name)))
			f->present++;
	}
}

static void
add_message(struct dt_rpt_stage *s, const char *msg)
{
	char clean[sizeof(s->messages[0])];
	int i;

	dt_rpt_clip(msg, 200, clean, sizeof(clean));
	for (i = 0; i < s->nmessages; i++)
		if (strcmp(s->messages[i], clean) == 0)
			return;
	if (s->nmessages < DT_RPT_MAX_MESSAGES)
		memcpy(s->messages[s->nmessages++], clean, sizeof(clean));
}

/* Adds a stage record's numeric "counts" members to the stage's. */
static void
add_counts(struct dt_rpt_stage *s, json_t *counts)
{
	const char *k;
	json_t *v;
	int i;

	json_object_foreach(counts, k, v) {
		if (!json_is_number(v) || strlen(k) >= sizeof(s->count_names[0]))
			continue;
		for (i = 0; i < s->ncounts; i++)
			if (strcmp(s->count_names[i], k) == 0)
				break;
		if (i == s->ncounts) {
			if (s->ncounts == DT_RPT_MAX_COUNTS)
				continue;
			snprintf(s->count_names[i], sizeof(s->count_names[0]),
			    "%s", k);
			s->counts[i] = 0;
			s->ncounts++;
		}
		s->counts[i] += json_number_value(v);
	}
}

/* The stage named name, added when new; NULL when the table is full. */
static struct dt_rpt_stage *
stage_of(struct dt_rpt_tally *t, const char *stage)
{
	char name[sizeof(t->stages[0].name)];
	struct dt_rpt_stage *s;
	int i;

	dt_rpt_clip(stage, 24, name, sizeof(name));
	for (i = 0; i < t->nstages; i++)
		if (strcmp(t->stages[i].name, name) == 0)
			return &t->stages[i];
	if (t->nstages == DT_RPT_MAX_STAGES) {
		dt_warn("more than %d stages report; '%s' is left out",
		    DT_RPT_MAX_STAGES, name);
		return NULL;
	}
	s = &t->stages[t->nstages++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, name, sizeof(name));
	return s;
}

static void
tally_stage(struct dt_rpt_tally *t, json_t *rec, const char *stage)
{
	struct dt_rpt_stage *s;
	const char *msg, *started;
	double st;
	json_t *counts = json_object_get(rec, "counts");

	if ((s = stage_of(t, stage)) == NULL)
		return;
	s->reports++;
	if (!number(json_object_get(rec, "status"), &st) || st < 0 || st > 255)
		st = 0;
	s->status = dt_exit_worse(s->status, (int)st);
	if (json_is_true(json_object_get(rec, "interrupted")))
		s->interrupted = 1;
	if ((msg = json_string_value(json_object_get(rec, "message"))) !=
	    NULL && *msg != '\0')
		add_message(s, msg);
	if (json_is_object(counts))
		add_counts(s, counts);
	started = json_string_value(json_object_get(rec, "started_at"));
	if (started != NULL && strlen(started) < sizeof(t->started_at) &&
	    (t->started_at[0] == '\0' || strcmp(started, t->started_at) < 0))
		snprintf(t->started_at, sizeof(t->started_at), "%s", started);
}

static void
tally_run_id(struct dt_rpt_tally *t, json_t *rec)
{
	const char *run_id = json_string_value(json_object_get(rec, "run_id"));

	if (run_id == NULL || *run_id == '\0')
		return;
	if (t->run_id[0] == '\0')
		dt_rpt_clip(run_id, 100, t->run_id, sizeof(t->run_id));
	else if (strncmp(t->run_id, run_id, sizeof(t->run_id) - 1) != 0)
		t->mixed_runs = 1;
}

void
dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *status = json_object_get(rec, "status");
	json_t *error = json_object_get(rec, "error");
	json_t *analysis = json_object_get(rec, "analysis");
	json_t *kind = json_object_get(error, "kind");
	const char *stage = json_string_value(json_object_get(rec, "stage"));
	const char *st;
	size_t len;
	int failed, has_error = error != NULL && !json_is_null(error);
	double latency;

	tally_run_id(t, rec);
	if (stage != NULL && json_object_get(rec, "id") == NULL) {
		tally_stage(t, rec, stage);
		return;
	}
	t->records++;
	if (json_is_string(status)) {
		st = json_string_value(status);
		len = json_string_length(status);
	} else {
		/* Replayed output of an earlier stage has none: derive one. */
		st = json_is_object(analysis) ? "analyzed" : has_error ?
		    "failed" : "fetched";
		len = strlen(st);
	}
	named(t->status, &t->nstatus, DT_RPT_MAX_STATUS, st, len)->n++;
	failed = len == 6 && memcmp(st, "failed", 6) == 0;
	if (has_error) {
		if (!json_is_string(kind))
			kind = NULL;
		named(t->kinds, &t->nkinds, DT_RPT_MAX_KINDS,
		    kind ? json_string_value(kind) : "unknown",
		    kind ? json_string_length(kind) : 7)->n++;
		/* Given back to the queue with its attempt is not failed. */
		if (!(len == 8 && memcmp(st, "released", 8) == 0))
			failed = 1;
	}
	if (failed)
		t->failed++;
	tally_usage(t, rec);
	if (number(json_object_get(rec, "latency_ms"), &latency) &&
	    latency >= 0)
		dt_rpt_hist_add(&t->latency, count_of(latency));
	if (json_is_object(analysis))
		tally_analysis(t, analysis);
}

const char *
dt_rpt_tally_state(const struct dt_rpt_tally *t, int *status)
{
	int i, failed = 0, partial = 0, st = DT_EXIT_OK;

	for (i = 0; i < t->nstages; i++) {
		const struct dt_rpt_stage *s = &t->stages[i];

		st = dt_exit_worse(st, s->status);
		if (!s->interrupted && s->status != DT_EXIT_OK &&
		    s->status != DT_EXIT_PARTIAL)
			failed = 1;
		else if (s->interrupted || s->status == DT_EXIT_PARTIAL)
			partial = 1;
	}
	if (t->failed > 0) {
		st = dt_exit_worse(st, DT_EXIT_PARTIAL);
		partial = 1;
	}
	if (t->bad_lines > 0) {
		st = dt_exit_worse(st, DT_EXIT_DATAERR);
		partial = 1;
	}
	*status = st;
	return failed ? "failed" : partial ? "partial" : "ok";
}

/* Summary JSON. */

static json_t *
named_obj(const struct dt_rpt_named *tab, int n)
{
	json_t *o = json_object();
	int i;

	for (i = 0; o != NULL && i < n; i++)
		if (tab[i].n > 0)
			json_object_set_new(o, tab[i].name,
			    json_integer((json_int_t)tab[i].n));
	return o;
}

static double
round_to(double v, double unit)
{
	return round(v / unit) * unit;
}

static json_t *
field_json(const struct dt_rpt_field *f, size_t top)
{
	const struct dt_rpt_topk_item *items[1000];
	json_t *o = json_object(), *counts, *shares, *arr;
	uint64_t shown = 0;
	size_t n, i;
	int j;

	if (o == NULL)
		return NULL;
	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		json_object_set_new(o, "kind", json_string("enum"));
		counts = json_object();
		shares = json_object();
		for (j = 0; j < f->nvalues; j++) {
			shown += f->counts[j];
			json_object_set_new(counts, f->values[j],
			    json_integer((json_int_t)f->counts[j]));
		}
		if (f->other > 0)
			json_object_set_new(counts, "other",
			    json_integer((json_int_t)f->other));
		shown += f->other;
		for (j = 0; j < f->nvalues && shown > 0; j++)
			json_object_set_new(shares, f->values[j], json_real(
			    round_to((double)f->counts[j] / (double)shown,
			    1e-4)));
		if (f->other > 0)
			json_object_set_new(shares, "other", json_real(
			    round_to((double)f->other / (double)shown, 1e-4)));
		json_object_set_new(o, "counts", counts);
		json_object_set_new(o, "shares", shares);
		break;
	case DT_RPT_FIELD_LABEL:
	case DT_RPT_FIELD_TOPICS:
		json_object_set_new(o, "kind", json_string(
		    f->kind == DT_RPT_FIELD_LABEL ? "label" : "topics"));
		n = dt_rpt_topk_top(&f->topk, items,
		    f->kind == DT_RPT_FIELD_LABEL ? 5 : top);
		arr = json_array();
		for (i = 0; i < n; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "value",
			    json_string(items[i]->key));
			json_object_set_new(e, "count",
			    json_integer((json_int_t)items[i]->count));
			if (f->kind == DT_RPT_FIELD_TOPICS)
				json_object_set_new(e, "error", json_integer(
				    (json_int_t)items[i]->err));
			json_array_append_new(arr, e);
			shown += items[i]->count;
		}
		json_object_set_new(o, "top", arr);
		json_object_set_new(o, "total",
		    json_integer((json_int_t)f->topk.total));
		if (f->kind == DT_RPT_FIELD_LABEL)
			json_object_set_new(o, "other", json_integer(
			    (json_int_t)(f->topk.total > shown ?
			    f->topk.total - shown : 0)));
		json_object_set_new(o, "approximate",
		    json_boolean(f->topk.evictions > 0));
		break;
	case DT_RPT_FIELD_ITEMS:
		json_object_set_new(o, "kind", json_string("items"));
		json_object_set_new(o, "items",
		    json_integer((json_int_t)f->items));
		break;
	case DT_RPT_FIELD_MEAN:
		json_object_set_new(o, "kind", json_string("mean"));
		json_object_set_new(o, "mean", f->present ? json_real(
		    round_to(f->sum / (double)f->present, 1e-4)) :
		    json_null());
		break;
	}
	json_object_set_new(o, "records", json_integer((json_int_t)f->present));
	return o;
}

static json_t *
stages_json(const struct dt_rpt_tally *t)
{
	json_t *arr = json_array();
	int i, j;

	for (i = 0; arr != NULL && i < t->nstages; i++) {
		const struct dt_rpt_stage *s = &t->stages[i];
		json_t *o = json_object(), *msgs = json_array(),
		    *counts = json_object();

		json_object_set_new(o, "stage", json_string(s->name));
		json_object_set_new(o, "status", json_integer(s->status));
		json_object_set_new(o, "interrupted",
		    json_boolean(s->interrupted));
		json_object_set_new(o, "reports", json_integer(s->reports));
		if (s->missing)
			json_object_set_new(o, "missing", json_true());
		for (j = 0; j < s->nmessages; j++)
			json_array_append_new(msgs,
			    json_string(s->messages[j]));
		json_object_set_new(o, "messages", msgs);
		for (j = 0; j < s->ncounts; j++) {
			double v = s->counts[j];

			json_object_set_new(counts, s->count_names[j],
			    v == floor(v) && fabs(v) < 9e15 ?
			    json_integer((json_int_t)v) : json_real(v));
		}
		json_object_set_new(o, "counts", counts);
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s)
{
	json_t *o = json_object(), *lat, *tok, *an, *fields;
	const char *state;
	int status, i;

	if (o == NULL)
		return NULL;
	state = dt_rpt_tally_state(t, &status);
	json_object_set_new(o, "run_id", run_id ? json_string(run_id) :
	    json_null());
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "exit_code", json_integer(status));
	json_object_set_new(o, "started_at", started ? json_string(started) :
	    json_null());
	json_object_set_new(o, "finished_at", finished ?
	    json_string(finished) : json_null());
	json_object_set_new(o, "duration_s", duration_s >= 0 ?
	    json_real(round_to(duration_s, 1e-3)) : json_null());
	json_object_set_new(o, "records",
	    json_integer((json_int_t)t->records));
	json_object_set_new(o, "failed", json_integer((json_int_t)t->failed));
	json_object_set_new(o, "bad_lines",
	    json_integer((json_int_t)t->bad_lines));
	json_object_set_new(o, "by_status", named_obj(t->status, t->nstatus));
	json_object_set_new(o, "by_error", named_obj(t->kinds, t->nkinds));
	tok = json_object();
	json_object_set_new(tok, "prompt",
	    json_integer((json_int_t)t->prompt_tokens));
	json_object_set_new(tok, "completion",
	    json_integer((json_int_t)t->completion_tokens));
	json_object_set_new(tok, "total",
	    json_integer((json_int_t)t->total_tokens));
	json_object_set_new(o, "tokens", tok);
	json_object_set_new(o, "cost_usd", t->with_cost ?
	    json_real(round_to(t->cost, 1e-6)) : json_null());
	lat = json_object();
	json_object_set_new(lat, "count",
	    json_integer((json_int_t)t->latency.n));
	if (t->latency.n > 0) {
		json_object_set_new(lat, "p50", json_integer((json_int_t)
		    dt_rpt_hist_quantile(&t->latency, 0.50)));
		json_object_set_new(lat, "p95", json_integer((json_int_t)
		    dt_rpt_hist_quantile(&t->latency, 0.95)));
		json_object_set_new(lat, "max",
		    json_integer((json_int_t)t->latency.max));
	} else {
		json_object_set_new(lat, "p50", json_null());
		json_object_set_new(lat, "p95", json_null());
		json_object_set_new(lat, "max", json_null());
	}
	json_object_set_new(o, "latency_ms", lat);
	an = json_object();
	json_object_set_new(an, "records",
	    json_integer((json_int_t)t->analyzed));
	fields = json_object();
	for (i = 0; i < t->nfields; i++)
		json_object_set_new(fields, t->fields[i].name,
		    field_json(&t->fields[i], t->top));
	json_object_set_new(an, "fields", fields);
	json_object_set_new(o, "analysis", an);
	json_object_set_new(o, "stages", stages_json(t));
	if (t->mixed_runs)
		json_object_set_new(o, "mixed_run_ids", json_true());
	return o;
}

/* Expected stages and shards. */

/* Finds the stage named name, adding it when there is room. */
static struct dt_rpt_stage *
stage_slot(struct dt_rpt_tally *t, const char *name, int *added)
{
	char clean[sizeof(t->stages[0].name)];
	int i;

	*added = 0;
	dt_rpt_clip(name, 24, clean, sizeof(clean));
	for (i = 0; i < t->nstages; i++)
		if (strcmp(t->stages[i].name, clean) == 0)
			return &t->stages[i];
	if (t->nstages == DT_RPT_MAX_STAGES) {
		dt_warn("more than %d stages report; '%s' is left out",
		    DT_RPT_MAX_STAGES, clean);
		return NULL;
	}
	memset(&t->stages[t->nstages], 0, sizeof(t->stages[0]));
	memcpy(t->stages[t->nstages].name, clean, sizeof(clean));
	*added = 1;
	return &t->stages[t->nstages++];
}

int
dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list)
{
	char name[32], msg[160];
	struct dt_rpt_stage *s;
	const char *p = list, *e;
	size_t n;
	int added, missing = 0;

	while (p != NULL && *p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			if ((s = stage_slot(t, name, &added)) != NULL && added) {
				s->missing = 1;
				s->status = DT_EXIT_TEMPFAIL;
				snprintf(msg, sizeof(msg), "%s ended without its "
				    "stage record (crashed or killed?)", s->name);
				dt_error("%s", msg);
				add_message(s, msg);
				missing++;
			}
		}
		p = e != NULL ? e + 1 : NULL;
	}
	return missing;
}

json_t *
dt_rpt_shard_json(const struct dt_rpt_tally *t)
{
	const struct dt_rpt_topk_item **items = NULL;
	json_t *o = json_object(), *lat = json_object(), *b = json_array(),
	    *fields = json_object();
	size_t i, n;
	int k;

	for (i = 0; i < DT_RPT_HIST_BUCKETS; i++)
		if (t->latency.count[i] > 0)
			json_array_append_new(b, json_pack("[II]",
			    (json_int_t)i, (json_int_t)t->latency.count[i]));
	json_object_set_new(lat, "min", json_integer((json_int_t)
	    t->latency.min));
	json_object_set_new(lat, "max", json_integer((json_int_t)
	    t->latency.max));
	json_object_set_new(lat, "buckets", b);
	json_object_set_new(o, "latency_hist", lat);
	for (k = 0; k < t->nfields; k++) {
		const struct dt_rpt_field *f = &t->fields[k];
		json_t *fo = json_object(), *c;

		if (f->kind == DT_RPT_FIELD_MEAN)
			json_object_set_new(fo, "sum", json_real(f->sum));
		else if (f->kind == DT_RPT_FIELD_LABEL ||
		    f->kind == DT_RPT_FIELD_TOPICS) {
			free(items);
			/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
			items = calloc(f->topk.n + 1, sizeof(*items));
			n = items ? dt_rpt_topk_top(&f->topk, items,
			    f->topk.n) : 0;
			c = json_array();
			for (i = 0; i < n; i++)
				json_array_append_new(c, json_pack("[sII]",
				    items[i]->key, (json_int_t)items[i]->count,
				    (json_int_t)items[i]->err));
			json_object_set_new(fo, "counters", c);
			json_object_set_new(fo, "total",
			    json_integer((json_int_t)f->topk.total));
			json_object_set_new(fo, "evictions",
			    json_integer((json_int_t)f->topk.evictions));
		} else {
			json_decref(fo);
			continue;
		}
		json_object_set_new(fields, f->name, fo);
	}
	free(items);
	json_object_set_new(o, "fields", fields);
	return o;
}

static uint64_t
u64_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
	    (uint64_t)json_integer_value(v) : json_is_real(v) ?
	    count_of(json_real_value(v)) : 0;
}

static void
merge_named(struct dt_rpt_named *tab, int *n, int max, json_t *obj)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
		named(tab, n, max, k, strlen(k))->n += u64_at(obj, k);
}

static void
merge_stages(struct dt_rpt_tally *t, json_t *stages)
{
	struct dt_rpt_stage *s;
	json_t *st, *m, *counts, *v;
	const char *k;
	size_t i, j;
	int added, c;

	json_array_foreach(stages, i, st) {
		const char *name = json_string_value(json_object_get(st,
		    "stage"));

		if (name == NULL || (s = stage_slot(t, name, &added)) == NULL)
			continue;
		s->reports += (int)u64_at(st, "reports");
		s->status = dt_exit_worse(s->status,
		    (int)json_integer_value(json_object_get(st, "status")));
		s->interrupted |= json_is_true(json_object_get(st,
		    "interrupted"));
		s->missing |= json_is_true(json_object_get(st, "missing"));
		json_array_foreach(json_object_get(st, "messages"), j, m)
			if (json_is_string(m))
				add_message(s, json_string_value(m));
		counts = json_object_get(st, "counts");
		json_object_foreach(counts, k, v) {
			if (!json_is_number(v))
				continue;
			for (c = 0; c < s->ncounts; c++)
				if (strcmp(s->count_names[c], k) == 0)
					break;
			if (c == s->ncounts) {
				if (s->ncounts == DT_RPT_MAX_COUNTS)
					continue;
				snprintf(s->count_names[c],
				    sizeof(s->count_names[0]), "%s", k);
				s->counts[c] = 0;
				s->ncounts++;
			}
			s->counts[c] += json_number_value(v);
		}
	}
}

static void
merge_field(struct dt_rpt_field *f, json_t *fj, json_t *internal)
{
	json_t *counts, *e;
	const char *k;
	size_t i;
	uint64_t listed = 0;
	int j;

	f->present += u64_at(fj, "records");
	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		counts = json_object_get(fj, "counts");
		for (j = 0; j < f->nvalues; j++)
			f->counts[j] += u64_at(counts, f->values[j]);
		f->other += u64_at(counts, "other");
		break;
	case DT_RPT_FIELD_ITEMS:
		f->items += u64_at(fj, "items");
		break;
	case DT_RPT_FIELD_MEAN:
		f->sum += json_number_value(json_object_get(internal, "sum"));
		break;
	case DT_RPT_FIELD_LABEL:
	case DT_RPT_FIELD_TOPICS:
		json_array_foreach(json_object_get(internal, "counters"), i,
		    e) {
			k = json_string_value(json_array_get(e, 0));
			if (k == NULL)
				continue;
			dt_rpt_topk_add_n(&f->topk, k, strlen(k), (uint64_t)
			    json_integer_value(json_array_get(e, 1)), (uint64_t)
			    json_integer_value(json_array_get(e, 2)));
			listed += (uint64_t)json_integer_value(
			    json_array_get(e, 1));
		}
		/* Occurrences the shard's counters no longer held. */
		if (u64_at(internal, "total") > listed)
			f->topk.total += u64_at(internal, "total") - listed;
		f->topk.evictions += u64_at(internal, "evictions");
		break;
	}
}

int
dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s)
{
	json_t *in = json_object_get(json_object_get(s, "shard"), "internal");
	json_t *tok = json_object_get(s, "tokens"), *hist, *b, *fields, *fj;
	const char *started = json_string_value(json_object_get(s,
	    "started_at"));
	size_t i;
	int k;

	if (!json_is_object(in)) {
		dt_warn("a shard's summary has no shard part; it is left out");
		return -1;
	}
	t->records += u64_at(s, "records");
	t->failed += u64_at(s, "failed");
	t->bad_lines += u64_at(s, "bad_lines");
	merge_named(t->status, &t->nstatus, DT_RPT_MAX_STATUS,
	    json_object_get(s, "by_status"));
	merge_named(t->kinds, &t->nkinds, DT_RPT_MAX_KINDS,
	    json_object_get(s, "by_error"));
	t->prompt_tokens += u64_at(tok, "prompt");
	t->completion_tokens += u64_at(tok, "completion");
	t->total_tokens += u64_at(tok, "total");
	if (json_is_number(json_object_get(s, "cost_usd"))) {
		t->cost += json_number_value(json_object_get(s, "cost_usd"));
		t->with_cost++;
	}
	hist = json_object_get(in, "latency_hist");
	json_array_foreach(json_object_get(hist, "buckets"), i, b) {
		json_int_t at = json_integer_value(json_array_get(b, 0));
		json_int_t n = json_integer_value(json_array_get(b, 1));
		uint64_t lo = u64_at(hist, "min"), hi = u64_at(hist, "max");

		if (at < 0 || (size_t)at >= DT_RPT_HIST_BUCKETS || n <= 0)
			continue;
		if (t->latency.n == 0 || lo < t->latency.min)
			t->latency.min = lo;
		if (hi > t->latency.max)
			t->latency.max = hi;
		t->latency.count[at] += (uint64_t)n;
		t->latency.n += (uint64_t)n;
	}
	t->analyzed += u64_at(json_object_get(s, "analysis"), "records");
	fields = json_object_get(json_object_get(s, "analysis"), "fields");
	for (k = 0; k < t->nfields; k++)
		if (json_is_object(fj = json_object_get(fields,
		    t->fields[k].name)))
			merge_field(&t->fields[k], fj, json_object_get(
			    json_object_get(in, "fields"),
			    t->fields[k].name));
	merge_stages(t, json_object_get(s, "stages"));
	if (json_is_true(json_object_get(s, "mixed_run_ids")))
		t->mixed_runs = 1;
	if (started != NULL && strlen(started) < sizeof(t->started_at) &&
	    (t->started_at[0] == '\0' || strcmp(started, t->started_at) < 0))
		snprintf(t->started_at, sizeof(t->started_at), "%s", started);
	return 0;
}
