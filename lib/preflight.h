/*
 * preflight.h: the one line each stage's --preflight prints.
 *
 * dt-entrypoint --preflight runs dt-fetch, dt-analyze and dt-report with
 * --preflight and shows their lines one after the other:
 *
 *   supabase: ready: ...
 *   perplexity: not ready: PERPLEXITY_MODEL: ...
 *
 * A line is data (stdout), not a log line, so it is printed whatever
 * DT_LOG_LEVEL says; every registered secret is still replaced by "***".
 */
#ifndef DT_PREFLIGHT_H
#define DT_PREFLIGHT_H

/*
 * Prints "<service>: ready: <message>" when status is 0, else
 * "<service>: not ready: <message>", on stdout as one line (line breaks
 * in the message become spaces).  Returns status, or DT_EXIT_IOERR when
 * stdout cannot be written.
 */
int dt_preflight_line(const char *service, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
