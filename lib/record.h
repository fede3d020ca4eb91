/*
 * record.h: helpers for the records that travel between the stages.
 */
#ifndef DT_RECORD_H
#define DT_RECORD_H

#include <jansson.h>

/*
 * Checks a record's "id": a JSON integer or a non-empty string of at most
 * 200 bytes.  Returns 0 and stores a borrowed reference in *id, or -1
 * and stores a static description of what is wrong in *why ("missing
 * id", "id must be an integer or a string, not a real", ...).
 */
int dt_record_id(json_t *rec, json_t **id, const char **why);

/*
 * Formats an id for messages: "42" or "\"a-1\"" into buf.  Returns buf.
 */
const char *dt_record_id_str(json_t *id, char *buf, size_t len);

/*
 * Sets rec["error"] to {"kind":kind,"message":message,"retryable":b}
 * (message passed through dt_redact) and returns 0, or -1 when out of
 * memory.  Does not steal rec.
 */
int dt_record_set_error(json_t *rec, const char *kind, int retryable,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Builds a new error record for a line that could not be parsed:
 * {"error":{"kind":"bad_record","message":...,"retryable":false},
 *  "input":{"where":"<stdin>:3","excerpt":"..."}}.
 * Returns a new reference or NULL when out of memory.
 */
json_t *dt_record_bad_line(const char *where, const char *why,
    const char *excerpt);

/*
 * Builds a stage record, the last line a stage writes:
 * {"stage":stage,"run_id":run_id,"status":status,"message":message,
 *  "counts":counts,<more's members>,"interrupted":interrupted}, with
 * null for a NULL run_id and a NULL or empty message.  Steals counts
 * (an object; NULL makes the call fail) and more (an object of the
 * stage's own members, or NULL for none).  Returns a new reference or
 * NULL when out of memory.
 */
json_t *dt_record_stage(const char *stage, const char *run_id, int status,
    const char *message, json_t *counts, json_t *more, int interrupted);

#endif
