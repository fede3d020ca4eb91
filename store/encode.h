/*
 * encode.h: how dt-store writes JSON text: growable buffers, and a
 * record's status line and dt_settle element written straight from the
 * parsed record, without building other JSON values first.
 */
#ifndef DT_STORE_ENCODE_H
#define DT_STORE_ENCODE_H

#include <stddef.h>

#include <jansson.h>

/* The flags dt_emit() encodes with, so both kinds of line look alike. */
#define DT_LINE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A growable byte buffer: zero it to start, free it with dt_buf_free(). */
struct dt_buf {
	char *p;
	size_t len, cap;
};

/*
 * Each of these appends to b, growing it by doubling, and returns 0, or
 * -1 when out of memory (b->len is then unspecified but within b; the
 * caller that wants to undo keeps the old length).
 */
int dt_buf_room(struct dt_buf *b, size_t need);   /* room only */
int dt_buf_put(struct dt_buf *b, const char *text, size_t n);
int dt_buf_json(struct dt_buf *b, const json_t *v, size_t flags);
int dt_buf_count(struct dt_buf *b, const char *key, json_int_t n);

/* Frees what b holds and zeroes it.  Accepts a zeroed b. */
void dt_buf_free(struct dt_buf *b);

/*
 * Appends v encoded exactly as Jansson encodes it with DT_LINE_FLAGS,
 * faster.  Returns 0 or -1.
 */
int dt_encode_value(struct dt_buf *b, const json_t *v);

/*
 * Where dt_encode_line() wrote values dt_encode_item() needs again: len
 * bytes at the offset in the line's buffer, len 0 when there was none.
 */
struct dt_spans {
	size_t analysis, analysis_len;
	size_t model, model_len;
	size_t version, version_len;
};

/*
 * Appends rec as dt_emit() would write it, without its closing brace,
 * and notes in *sp where the values of "analysis", "model" and
 * "prompt_version" are.  Returns 0 or -1.
 */
int dt_encode_line(struct dt_buf *b, json_t *rec, struct dt_spans *sp);

/*
 * Appends the dt_settle element of rec (a record with a usable id and an
 * "analysis", "error" or "skip" object): {"id":"<sid>", then
 * "error":{"kind", "message"} (and "retryable" when rec's error has it),
 * or "analysis" with model, prompt_version, token counts, latency_ms and
 * cost_usd where rec has them, or else "skip":{"reason","message"}}.  sid is the id as text
 * (sid_is_str: rec's id is a string, encoded from it).  Values sp marks
 * in lines are copied from there.  Returns 0 or -1.
 */
int dt_encode_item(struct dt_buf *b, json_t *rec, const char *sid,
    int sid_is_str, const struct dt_buf *lines, const struct dt_spans *sp);

#endif
