/*
 * watch.h: a stage ends with the process that started its run.
 */
#ifndef DT_WATCH_H
#define DT_WATCH_H

/*
 * Watches the process DT_WATCH_PID names (dt-entrypoint, or dt-fanout
 * run alone), which must be this process's parent or an ancestor, from
 * a thread that takes no signal.  When it ends, SIGKILL included (or
 * has already), or the watch cannot start, logs one error line and ends
 * this program at once with _exit(DT_EXIT_TEMPFAIL): no stage goes on
 * for a run nobody runs.  Without DT_WATCH_PID it does nothing.
 * Returns 0, or -1 when DT_WATCH_PID is not a pid (logged).
 */
int dt_watch_start(void);

#endif
