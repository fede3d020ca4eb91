/*
 * shared.h: what the dt-analyze workers of one run share: one small
 * file in the run's state directory, mapped into memory and changed
 * under flock(2), and the call slots beside it (docs/analyze.md).
 */
#ifndef DT_SHARED_H
#define DT_SHARED_H

#include <stddef.h>
#include <stdint.h>

struct dt_shared;

enum {
	DT_BREAKER_CLOSED = 0,
	DT_BREAKER_OUTAGE = 1,  /* too many consecutive outage failures */
	DT_BREAKER_AUTH = 2,    /* the API refused the key */
	DT_BREAKER_SETUP = 3    /* the API refused the run's configuration */
};

/* The state call.c reads and changes between dt_shared_lock and _unlock. */
struct dt_state {
	int64_t hold_until;     /* no request slot before this time */
	int64_t fails;          /* consecutive outage failures */
	int32_t breaker;        /* DT_BREAKER_* */
	int32_t proven;         /* some call got an analysis */
	int32_t warm_tried;     /* the warm-up call was answered */
	int32_t warm_pid;       /* the worker making it, or 0 */
	int64_t warm_until;     /* its lease */
	double spent, reserved, max_cost; /* the budget, in USD */
	int64_t streak;         /* refusals alike in a row */
	char sig[64];           /* "status type" of those refusals */
	char why[512];          /* why the breaker opened */
};

/*
 * Opens (creating when needed) "analyze.state" in dir, allowing rpm
 * requests per window_ms (rpm 0: no limit); a file made with other
 * values is an error.  Returns the state, or NULL with the reason in
 * err.  dt_shared_close() accepts NULL.
 */
struct dt_shared *dt_shared_open(const char *dir, long long rpm,
    long long window_ms, char *err, size_t errlen);
void dt_shared_close(struct dt_shared *s);

/* Locks the state and returns it; dt_shared_unlock() releases it. */
struct dt_state *dt_shared_lock(struct dt_shared *s);
void dt_shared_unlock(struct dt_shared *s);

/* Returns DT_BREAKER_CLOSED or why the breaker is open. */
int dt_shared_breaker(struct dt_shared *s);

/*
 * Takes a request slot under the rate limit and hold_until when one is
 * due now, and returns 0: send now.  Else returns the milliseconds
 * until the next is due; the caller waits and asks again.
 */
long long dt_shared_slot(struct dt_shared *s);

/*
 * Takes one of slots call slots (an flock(2) on "call.<i>" in the state
 * directory, held until the process ends), waiting while every one is
 * taken until stop(arg) returns nonzero.  Returns 1 with a slot, 0 when
 * stopped, -1 with the reason in err.
 */
int dt_shared_call_slot(struct dt_shared *s, int slots, int (*stop)(void *),
    void *arg, char *err, size_t errlen);

#endif
