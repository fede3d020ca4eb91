/*
 * reuse.h: dt-fetch --reuse: a text already analysed, or being analysed,
 * with the run's prompt version is not sent again (docs/supabase.md,
 * "Reusing analyses").
 */
#ifndef DT_FETCH_REUSE_H
#define DT_FETCH_REUSE_H

#include <jansson.h>

/* What dt_fetch_reuse_record() made of a row. */
enum {
	DT_FETCH_ANALYSE = 0,   /* nothing: the text is to be analysed */
	DT_FETCH_REUSED = 1,    /* it has the stored analysis */
	DT_FETCH_SAME_TEXT = 2  /* it follows a row with the same text */
};

/*
 * Checks a prompt version as dt-analyze --prompt-version prints it: 1 to
 * 64 letters, digits, '-', '_' or '.'.  Returns 0, or -1 after an error
 * line naming what, the option.
 */
int dt_fetch_reuse_check(const char *what, const char *version);

/*
 * Completes the source record rec of a claimed row (row: one element of
 * dt_claim's reply, borrowed) from the row's "reused":
 * - a stored analysis of the text: "analysis", "model" and
 *   "prompt_version" as dt-analyze writes them, a "usage" of nothing,
 *   "tries": 0 and "reused": {"from": "<source id>"}; dt-analyze passes
 *   the record through and dt-store stores it (DT_FETCH_REUSED);
 * - another row with the same text under analysis: "same_text": {"as":
 *   "<source id>"} and "skip": {"reason": "same_text", ...}; dt-analyze
 *   passes it through and dt-store stores that row's analysis for it
 *   (DT_FETCH_SAME_TEXT).
 * Returns what it did, or -1 when out of memory.
 */
int dt_fetch_reuse_record(json_t *rec, json_t *row);

#endif
