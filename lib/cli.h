/*
 * cli.h: what every program's command line shares.
 */
#ifndef DT_CLI_H
#define DT_CLI_H

#ifndef DT_VERSION
#define DT_VERSION "0.0.0"
#endif

/*
 * Starts logging, stdout, the secrets and the watch: with DT_WATCH_PID
 * (an ancestor) a thread ends this program with DT_EXIT_TEMPFAIL and one
 * error line once that process ends.  Returns 0, or -1 (exit 78).
 */
int dt_cli_start(const char *prog);

/* Prints "<prog>: <msg>" (fmt NULL: none) and the --help hint; 64. */
int dt_cli_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Closes stdout.  Returns status, or DT_EXIT_IOERR when that failed. */
int dt_cli_close_stdout(int status);

/*
 * <program dir>/../share/dt/<name> when it exists, else DT_DATADIR/<name>;
 * static, valid for eight more calls.
 */
const char *dt_data_file(const char *name);

/* Calls handler on SIGTERM and SIGINT, with sigaction's sa_flags. */
void dt_cli_catch_signals(void (*handler)(int), int flags);

/*
 * Prints "<service>: ready: <message>" (status != 0: "not ready") on
 * stdout, secrets redacted.  Returns status, or DT_EXIT_IOERR.
 */
int dt_preflight_line(const char *service, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
