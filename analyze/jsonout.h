/*
 * jsonout.h: writing records as compact JSON lines.
 *
 * dt_emit (lib/ndjson.h) writes a record with json_dumps, which spent a
 * fifth of dt-analyze's instructions on a record of 600 bytes: Jansson
 * escapes a string a code point at a time through a callback and prints
 * every number with snprintf.  This writes the same bytes (the format of
 * json_dumps with JSON_COMPACT | JSON_REAL_PRECISION(15)) into a buffer
 * that is kept from record to record.
 */
#ifndef DT_ANALYZE_JSONOUT_H
#define DT_ANALYZE_JSONOUT_H

#include <stddef.h>
#include <jansson.h>

/* A growing buffer; zero it to start.  Free with dt_buf_free(). */
struct dt_buf {
	char *s;
	size_t len, cap;
};

/*
 * Appends v to b as compact JSON, byte for byte what json_dumps(v,
 * JSON_COMPACT | JSON_REAL_PRECISION(15)) returns.  Returns 0, or -1
 * when out of memory or when v is NULL or nested deeper than 2048
 * (json_dumps fails there too); b->len is then unchanged.
 */
int dt_json_append(struct dt_buf *b, const json_t *v);

/* Appends one byte.  Returns 0, or -1 when out of memory. */
int dt_json_append_byte(struct dt_buf *b, char c);

/* Appends n bytes of s as they are.  Returns 0, or -1 (out of memory). */
int dt_json_append_raw(struct dt_buf *b, const char *s, size_t n);

/*
 * Appends "key":v, as a member of an object that json_dumps writes.
 * Returns 0, or -1 as dt_json_append(); b->len is then unchanged.
 */
int dt_json_append_member(struct dt_buf *b, const char *key,
    const json_t *v);

/* Frees what b holds and zeroes it.  Accepts a zeroed buffer. */
void dt_buf_free(struct dt_buf *b);

#endif
