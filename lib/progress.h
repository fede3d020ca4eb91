/*
 * progress.h: dt-store's progress lines during a long run: one info
 * line every DT_PROGRESS_SECONDS (0: none) with the records done, failed
 * and skipped, the rate, the cost so far and the time left.  The time
 * left needs the rows dt-fetch claimed (DT_STATE_DIR/fetch.claimed) and
 * the deadline (DT_RUN_STARTED_AT plus DT_DEADLINE_SECONDS, as
 * dt-entrypoint sets them).
 */
#ifndef DT_PROGRESS_H
#define DT_PROGRESS_H

#include <jansson.h>

struct dt_progress {
	long long every_ms;     /* 0: no progress lines */
	long long start_ms;     /* dt_now_ms() when dt-store started */
	long long next_ms;      /* when the next line is due */
	double deadline;        /* wall clock when claiming stops, 0: unknown */
	long long max_records;  /* DT_MAX_RECORDS, 0: no cap */
	double cost;            /* USD of the analyses seen */
};

/* Reads the settings above.  Returns the number of problems (logged). */
int dt_progress_init(struct dt_progress *p);

/* Milliseconds until the next line is due (0: now), or -1 for never. */
long long dt_progress_wait_ms(const struct dt_progress *p);

/* Adds the cost of rec's analysis ("usage"."cost_usd"; borrowed). */
void dt_progress_add(struct dt_progress *p, json_t *rec);

/* Logs the line when it is due, from the counts so far. */
void dt_progress_tick(struct dt_progress *p, long long done,
    long long failed, long long skipped);

/*
 * For dt-fetch: writes "<rows claimed> <1 once claiming is over, else
 * 0>" to DT_STATE_DIR/fetch.claimed through a rename, so that no reader
 * sees half of it.  Nothing without DT_STATE_DIR; a failure is logged
 * at debug level only.
 */
void dt_progress_note_claimed(long long rows, int finished);

#endif
