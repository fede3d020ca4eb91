/*
 * cli.h: what every program's command line has in common.
 */
#ifndef DT_CLI_H
#define DT_CLI_H

#ifndef DT_VERSION
#define DT_VERSION "0.0.0"
#endif

/*
 * What every program does first: logging as prog, the watch on the
 * parent (DT_WATCH_PID), stdout for records (dt_out_init) and the
 * secrets to redact (dt_config_register_secrets).  Returns 0, or -1 when
 * logging or the watch cannot start (logged where possible): exit
 * DT_EXIT_CONFIG then.
 */
int dt_cli_start(const char *prog);

/* Prints "dt-fetch 0.1.0" to stdout. */
void dt_cli_version(void);

/*
 * Prints "<prog>: <msg>" and "Try '<prog> --help'." to stderr and
 * returns DT_EXIT_USAGE, for: return dt_cli_usage_error("...").
 * msg may be NULL when getopt already printed the reason.
 */
int dt_cli_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Writes the help text to stdout and returns 0, or DT_EXIT_IOERR when
 * stdout cannot be written.
 */
int dt_cli_help(const char *text);

/*
 * Closes stdout and reports a write error that buffering hid until now.
 * Returns status unchanged, or DT_EXIT_IOERR when the close failed.
 */
int dt_cli_close_stdout(int status);

/*
 * Returns the path of an installed data file (prompt.txt, schema.json):
 * <dir of the running program>/../share/dt/<name> when that file exists,
 * so a build tree or a relocated install finds its own files, else
 * DT_DATADIR/<name>.  The string is static; at most 8 names are kept.
 */
const char *dt_data_file(const char *name);

/*
 * Calls handler on SIGTERM and SIGINT; flags are sigaction's sa_flags
 * (SA_RESTART: reads and writes go on after the handler).
 */
void dt_cli_catch_signals(void (*handler)(int), int flags);

#endif
