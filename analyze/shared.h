/*
 * shared.h: what the dt-analyze workers of one run share.
 *
 * GNU parallel runs several dt-analyze processes side by side; the
 * requests-per-minute limit, the cost budget, the circuit breaker and
 * the first-call warm-up hold for all of them together.  Their common
 * state is one small file in a directory that every worker of a run is
 * given (DT_STATE_DIR), mapped into memory and guarded by flock(2): a
 * worker holds the lock only for the few instructions of one update.
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

/*
 * Opens (creating when needed) the state file "analyze.state" in dir.
 * rpm requests are allowed per window_ms (rpm 0: no limit).  All the
 * workers of a run must agree on rpm and window_ms; a file made with
 * other values is an error.  Returns the state, or NULL after writing
 * the reason to err.  Close with dt_shared_close().
 */
struct dt_shared *dt_shared_open(const char *dir, long long rpm,
    long long window_ms, char *err, size_t errlen);
void dt_shared_close(struct dt_shared *s);

/*
 * Takes a request slot under the rate limit and any hold set by
 * dt_shared_hold() when one is due now, and returns 0: send now.  Else
 * takes nothing and returns how many milliseconds are left until the
 * next slot is due; the caller waits and asks again (another worker may
 * take that slot first).
 */
long long dt_shared_slot(struct dt_shared *s);

/* Makes every worker's next slot wait at least ms from now (after 429). */
void dt_shared_hold(struct dt_shared *s, long long ms);

/*
 * Reserves budget for one call: the dearest call seen so far.  Returns
 * 1 and stores the amount reserved in *reserved, or 0 when the budget
 * (USD; <= 0 means none) is spent or would be by this call.
 */
int dt_shared_budget_take(struct dt_shared *s, double budget,
    double *reserved);

/*
 * Releases a reservation and adds what the call actually cost; budget
 * as given to dt_shared_budget_take() (without one, nothing is kept).
 */
void dt_shared_budget_settle(struct dt_shared *s, double budget,
    double reserved, double cost);

/* Returns DT_BREAKER_CLOSED or the reason the breaker is open. */
int dt_shared_breaker(struct dt_shared *s);

/*
 * Records the outcome of one call: outage (1) counts towards the
 * threshold of consecutive outage failures, anything else resets it.
 * Returns the breaker state afterwards.
 */
int dt_shared_breaker_note(struct dt_shared *s, int outage,
    long long threshold);

/*
 * Opens the breaker for reason (DT_BREAKER_*), with why (the API's own
 * answer, kept up to DT_SHARED_WHY bytes; may be NULL) for the workers
 * that find it open.  Returns 1 when this call opened it, 0 when it was
 * open already: the one worker that opened it says why, once a run.
 */
int dt_shared_breaker_trip(struct dt_shared *s, int reason, const char *why);

#define DT_SHARED_WHY 512

/*
 * Copies into buf (len bytes) why the breaker was opened, as given to
 * dt_shared_breaker_trip(); "" when nothing was given.
 */
void dt_shared_breaker_why(struct dt_shared *s, char *buf, size_t len);

/*
 * Counts an API answer that may be a setup error: an error answer
 * (status, and sig: the error's type or code, "" when none) that is not
 * about any one record as far as dt-analyze can tell.  The same answer
 * for consecutive calls, from any worker, is the run's setup, not the
 * records: once threshold of them come in a row, the breaker opens for
 * DT_BREAKER_SETUP and the call returns 1 when it was this one that
 * opened it.  Any other answer (dt_shared_setup_ok) ends the streak.
 * Returns 0 otherwise; *streak gets the length of the streak.
 */
int dt_shared_setup_note(struct dt_shared *s, long status, const char *sig,
    long long threshold, const char *why, int *streak);

/*
 * An answer that was not a setup error: the streak ends.  analyzed is 1
 * when the call got an analysis: the run's setup is proven good, and a
 * refusal after it is about its record (dt_shared_setup_proven).
 */
void dt_shared_setup_ok(struct dt_shared *s, int analyzed);

/* Returns 1 once some call of the run got an analysis. */
int dt_shared_setup_proven(struct dt_shared *s);

/*
 * The first call with a new schema may be slow while the API prepares
 * it, so only one worker makes it.  Returns DT_WARM_GO, DT_WARM_LEAD
 * (the caller makes the call and reports with dt_shared_warm_done) or
 * DT_WARM_WAIT (ask again shortly).  lease_ms bounds how long a leader
 * that died can hold the others up.  *warm is set to 1 once some call
 * succeeded, so callers know whether to allow the longer first timeout.
 */
int dt_shared_warm(struct dt_shared *s, long long lease_ms, int *warm);

/*
 * Ends the warm-up call with how (DT_WARM_*).  After DT_WARM_AGAIN the
 * warm-up goes on: the next call is made by one worker alone again, so
 * that a run whose every call is refused (a misspelt model) makes no
 * more calls than it takes to tell, however many workers it has.
 */
void dt_shared_warm_done(struct dt_shared *s, int how);

/*
 * Takes one of slots call slots, so that no more than slots workers of
 * a run call the API at once however many have started: an flock(2) on
 * one of the files "call.0" to "call.<slots - 1>" in the state
 * directory, held until the process ends (the kernel lets it go even
 * after a crash).  While every slot is taken it waits, looking every
 * 2 ms, until one is free or stop(arg) returns nonzero.  Returns 1 with a
 * slot, 0 when stopped, -1 after writing the reason to err.
 */
int dt_shared_call_slot(struct dt_shared *s, int slots, int (*stop)(void *),
    void *arg, char *err, size_t errlen);

/* Milliseconds on the clock all workers share (CLOCK_MONOTONIC). */
long long dt_shared_now(void);

#endif
