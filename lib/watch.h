/*
 * watch.h: a stage ends with the process that started its run.
 *
 * dt-entrypoint exports its own pid as DT_WATCH_PID (dt-fanout, run
 * alone, its own).  However that process ends, SIGKILL included, every
 * stage it started then ends at once: none goes on to claim, call the
 * API, store or report for a run nobody is running any more.
 */
#ifndef DT_WATCH_H
#define DT_WATCH_H

/*
 * Watches the process DT_WATCH_PID names, which must be this process's
 * parent or an ancestor of it, from a thread of its own that takes no
 * signal.  When it ends (or has already ended: it is no longer an
 * ancestor), logs one error line and ends this program at once with
 * _exit(DT_EXIT_TEMPFAIL): no stage record, nothing flushed, no cleanup.
 * When the watch cannot be started (no thread), it logs one error line
 * and ends this program the same way rather than run unwatched.
 * Without DT_WATCH_PID it does nothing.  Returns 0, or -1 when
 * DT_WATCH_PID is not a pid (logged).
 */
int dt_watch_start(void);

#endif
