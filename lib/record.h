/*
 * record.h: the records that travel between the stages.
 */
#ifndef DT_RECORD_H
#define DT_RECORD_H

#include <jansson.h>

/*
 * Checks a record's "id": a JSON integer, or a non-empty string of at
 * most 200 bytes.  Returns 0 with *id borrowed, or -1 with *why a
 * static reason ("missing id", "id must be ..., not a fraction", ...).
 */
int dt_record_id(json_t *rec, json_t **id, const char **why);

/* Writes id for messages, 42 or "a-1", into buf.  Returns buf. */
const char *dt_record_id_str(json_t *id, char *buf, size_t len);

/*
 * Sets rec's "error" to {"kind","message" (redacted),"retryable"}.
 * Returns 0, or -1 when out of memory.
 */
int dt_record_set_error(json_t *rec, const char *kind, int retryable,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Returns a new stage record, the last line a stage writes:
 * {"stage","run_id","status","message","counts",<more's members>,
 *  "interrupted"}, null for a NULL run_id and a NULL or empty message;
 * NULL when out of memory.  Steals counts (an object, not NULL) and
 * more (an object, or NULL).
 */
json_t *dt_record_stage(const char *stage, const char *run_id, int status,
    const char *message, json_t *counts, json_t *more, int interrupted);

#endif
