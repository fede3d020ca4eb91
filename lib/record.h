/*
 * record.h: the records that travel between the stages.
 */
#ifndef DT_RECORD_H
#define DT_RECORD_H

#include <jansson.h>

/*
 * Checks rec's "id": an integer or a string of 1 to 200 bytes.  Returns
 * 0 with *id borrowed, or -1 with *why a static reason ("missing id").
 */
int dt_record_id(json_t *rec, json_t **id, const char **why);

/* Writes id for messages, 42 or "a-1", into buf.  Returns buf. */
const char *dt_record_id_str(json_t *id, char *buf, size_t len);

/* Sets rec's "error" {"kind","message" (redacted),"retryable"}; 0/-1. */
int dt_record_set_error(json_t *rec, const char *kind, int retryable,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Returns a new stage record, a stage's last line: {"stage","run_id",
 * "status","message","counts",<more's members>,"interrupted"} (null for
 * a NULL run_id or an empty message), or NULL.  Steals counts and more
 * (objects; more may be NULL).
 */
json_t *dt_record_stage(const char *stage, const char *run_id, int status,
    const char *message, json_t *counts, json_t *more, int interrupted);

#endif
