/*
 * cli.h: what every program's command line shares.
 */
#ifndef DT_CLI_H
#define DT_CLI_H

#ifndef DT_VERSION
#define DT_VERSION "0.0.0"
#endif

/*
 * What every program does first: logging, stdout, the secrets, and the
 * watch: with DT_WATCH_PID (dt-entrypoint, or dt-fanout run alone,
 * which must be an ancestor) a thread that takes no signal ends this
 * program with DT_EXIT_TEMPFAIL and one error line once that process
 * ends, SIGKILL included.  Returns 0, or -1: exit DT_EXIT_CONFIG then.
 */
int dt_cli_start(const char *prog);

/*
 * Prints "<prog>: <msg>" (unless fmt is NULL: getopt said why) and
 * "Try '<prog> --help'." to stderr.  Returns DT_EXIT_USAGE.
 */
int dt_cli_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Closes stdout.  Returns status, or DT_EXIT_IOERR when that failed. */
int dt_cli_close_stdout(int status);

/*
 * The path of data file name: <program's dir>/../share/dt/<name> when it
 * exists, else DT_DATADIR/<name>.  Static, valid for eight more calls.
 */
const char *dt_data_file(const char *name);

/* Calls handler on SIGTERM and SIGINT, with sigaction's sa_flags. */
void dt_cli_catch_signals(void (*handler)(int), int flags);

/*
 * Prints --preflight's line on stdout, "<service>: ready: <message>" or
 * (status != 0) "<service>: not ready: ...", secrets as "***".  Returns
 * status, or DT_EXIT_IOERR when stdout cannot be written.
 */
int dt_preflight_line(const char *service, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
