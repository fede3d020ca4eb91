/*
 * shared.h: what the dt-analyze workers of one run share: the rate
 * limit, the budget, the circuit breaker, the streak of refusals that
 * tells a setup error, the first-call warm-up and the call slots.  The
 * state is one small file in the run's state directory, mapped into
 * memory and changed under flock(2) (docs/analyze.md).
 */
#ifndef DT_SHARED_H
#define DT_SHARED_H

#include <stddef.h>

struct dt_shared;

enum {
	DT_BREAKER_CLOSED = 0,
	DT_BREAKER_OUTAGE = 1,  /* too many consecutive outage failures */
	DT_BREAKER_AUTH = 2,    /* the API refused the key */
	DT_BREAKER_SETUP = 3    /* the API refused the run's configuration */
};

/* dt_shared_warm()'s answers. */
enum {
	DT_WARM_GO = 0,         /* warmed up, or a warm-up call was made */
	DT_WARM_LEAD = 1,       /* this worker makes the warm-up call */
	DT_WARM_WAIT = 2        /* another worker's warm-up call is running */
};

/* How a warm-up call ended (dt_shared_warm_done). */
enum {
	DT_WARM_FAILED = 0,     /* it failed: everyone goes */
	DT_WARM_OK = 1,         /* it succeeded: everyone goes */
	DT_WARM_AGAIN = 2       /* a possible setup error: the next call is
				 * made alone too */
};

#define DT_SHARED_WHY 512

/*
 * Opens (creating when needed) "analyze.state" in dir, allowing rpm
 * requests per window_ms (rpm 0: no limit); a file made with other
 * values is an error.  Returns the state, or NULL with the reason in
 * err.  dt_shared_close() accepts NULL.
 */
struct dt_shared *dt_shared_open(const char *dir, long long rpm,
    long long window_ms, char *err, size_t errlen);
void dt_shared_close(struct dt_shared *s);

/*
 * Takes a request slot under the rate limit and any hold when one is
 * due now, and returns 0: send now.  Else returns the milliseconds
 * until the next is due; the caller waits and asks again.
 */
long long dt_shared_slot(struct dt_shared *s);

/* Makes every worker's next slot wait at least ms from now (after 429). */
void dt_shared_hold(struct dt_shared *s, long long ms);

/*
 * Reserves the dearest call seen so far from budget (USD; <= 0: none).
 * Returns 1 with the amount in *reserved, or 0 when the budget is spent
 * or would be by this call.
 */
int dt_shared_budget_take(struct dt_shared *s, double budget,
    double *reserved);

/* Releases a reservation and adds what the call cost. */
void dt_shared_budget_settle(struct dt_shared *s, double budget,
    double reserved, double cost);

/* Returns DT_BREAKER_CLOSED or why the breaker is open. */
int dt_shared_breaker(struct dt_shared *s);

/*
 * Notes one call: an outage (1) counts towards threshold consecutive
 * ones, which open the breaker; anything else resets the count.
 * Returns the breaker's state.
 */
int dt_shared_breaker_note(struct dt_shared *s, int outage,
    long long threshold);

/*
 * Opens the breaker for reason, with why (the API's answer, up to
 * DT_SHARED_WHY bytes; may be NULL).  Returns 1 when this call opened
 * it: that worker says why, once a run.
 */
int dt_shared_breaker_trip(struct dt_shared *s, int reason, const char *why);

/* Copies why the breaker was opened into buf ("" when not given). */
void dt_shared_breaker_why(struct dt_shared *s, char *buf, size_t len);

/*
 * Counts an error answer that may be a setup error (status, and sig:
 * the error's type or code).  The same answer threshold times in a row,
 * from any worker, opens the breaker for DT_BREAKER_SETUP; returns 1
 * when this call opened it, else 0.  *streak gets the streak's length.
 */
int dt_shared_setup_note(struct dt_shared *s, long status, const char *sig,
    long long threshold, const char *why, int *streak);

/*
 * An answer from the model ends the streak; analyzed (1: it got an
 * analysis) proves the setup good (dt_shared_setup_proven).
 */
void dt_shared_setup_ok(struct dt_shared *s, int analyzed);
int dt_shared_setup_proven(struct dt_shared *s);

/*
 * The first call with a new schema may be slow while the API prepares
 * it, so only one worker makes it: returns DT_WARM_GO, DT_WARM_LEAD
 * (make the call, then dt_shared_warm_done) or DT_WARM_WAIT (ask again
 * shortly).  lease_ms bounds how long a leader that died holds the
 * others up.  *warm is set to 1 once some call succeeded.
 */
int dt_shared_warm(struct dt_shared *s, long long lease_ms, int *warm);

/* Ends the warm-up call with how (DT_WARM_*). */
void dt_shared_warm_done(struct dt_shared *s, int how);

/*
 * Takes one of slots call slots (an flock(2) on "call.<i>" in the state
 * directory, held until the process ends), waiting while every one is
 * taken until stop(arg) returns nonzero.  Returns 1 with a slot, 0 when
 * stopped, -1 with the reason in err.
 */
int dt_shared_call_slot(struct dt_shared *s, int slots, int (*stop)(void *),
    void *arg, char *err, size_t errlen);

#endif
