/*
 * clock.h: the monotonic clock, in milliseconds.
 */
#ifndef DT_CLOCK_H
#define DT_CLOCK_H

/*
 * Milliseconds on CLOCK_MONOTONIC: for durations and deadlines, which a
 * change of the wall clock must not move.  The clock is the machine's,
 * so processes of one run may compare what they read.
 */
long long dt_now_ms(void);

/* Sleeps ms milliseconds (none when ms <= 0), resuming after a signal. */
void dt_sleep_ms(long ms);

#endif
