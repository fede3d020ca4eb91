/*
 * progress.h: dt-store's progress lines during a long run.
 *
 * dt-store sees every record when its analysis is done, with what it
 * cost, and every status, so it is the stage that says how a run goes:
 * one info line every DT_PROGRESS_SECONDS (60; 0: none) with the records
 * done, failed and skipped, the rate per minute, the cost so far and an
 * estimate of the time left.  The time left needs the number of rows
 * claimed, which dt-fetch keeps in DT_STATE_DIR/fetch.claimed (see
 * dt_progress_note_claimed), and the run's deadline (DT_RUN_STARTED_AT
 * plus DT_DEADLINE_SECONDS, as dt-entrypoint sets them).
 */
#ifndef DT_PROGRESS_H
#define DT_PROGRESS_H

#include <jansson.h>

struct dt_progress {
	long long every_ms;     /* 0: no progress lines */
	long long start_ms;     /* CLOCK_MONOTONIC, when dt-store started */
	long long next_ms;      /* when the next line is due */
	double deadline;        /* wall clock when claiming stops, 0: unknown */
	long long max_records;  /* DT_MAX_RECORDS, 0: no cap */
	char claimed_file[4200]; /* "" without DT_STATE_DIR */
	double cost;            /* USD of the analyses seen */
};

/*
 * Reads DT_PROGRESS_SECONDS (0 to 86400), DT_STATE_DIR, DT_MAX_RECORDS,
 * DT_RUN_STARTED_AT and DT_DEADLINE_SECONDS.  Returns the number of
 * problems, each logged naming its variable.
 */
int dt_progress_init(struct dt_progress *p);

/* Milliseconds until the next line is due (0: now), or -1 for never. */
long long dt_progress_wait_ms(const struct dt_progress *p);

/* Adds the cost of rec's analysis (its "usage"."cost_usd"; borrowed). */
void dt_progress_add(struct dt_progress *p, json_t *rec);

/*
 * Logs the progress line when it is due, from the counts of records
 * done (stored), failed and skipped so far.
 */
void dt_progress_tick(struct dt_progress *p, long long done,
    long long failed, long long skipped);

/*
 * For dt-fetch: writes "<rows claimed> <1 when claiming is over, else 0>"
 * to DT_STATE_DIR/fetch.claimed (through a temporary file and rename, so
 * a reader never sees half of it).  Does nothing without DT_STATE_DIR;
 * a failure is logged at debug level only: the lines are a courtesy.
 */
void dt_progress_note_claimed(long long rows, int finished);

#endif
