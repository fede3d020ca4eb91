/*
 * cli.c: the parts of a command line every dt program shares.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "watch.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif

int
dt_cli_start(const char *prog)
{
	if (dt_log_init(prog) < 0 || dt_watch_start() < 0)
		return -1;
	dt_out_init();
	dt_config_register_secrets();
	return 0;
}

void
dt_cli_version(void)
{
	printf("%s %s\n", dt_prog(), DT_VERSION);
}

int
dt_cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fprintf(stderr, "%s: ", dt_prog());
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "Try '%s --help'.\n", dt_prog());
	return DT_EXIT_USAGE;
}

int
dt_cli_help(const char *text)
{
	fputs(text, stdout);
	return dt_cli_close_stdout(DT_EXIT_OK);
}

int
dt_cli_close_stdout(int status)
{
	/* After EPIPE there is nobody to tell; the status says it. */
	if (fclose(stdout) != 0 && errno != EPIPE) {
		dt_error("cannot write standard output: %s", strerror(errno));
		return dt_exit_worse(status, DT_EXIT_IOERR);
	}
	return status;
}

const char *
dt_data_file(const char *name)
{
	static char paths[8][PATH_MAX];
	static int used;
	char exe[PATH_MAX], *slash;
	ssize_t n;
	int i;

	for (i = 0; i < used; i++) {
		const char *base = strrchr(paths[i], '/');

		if (base != NULL && strcmp(base + 1, name) == 0)
			return paths[i];
	}
	if (used == 8)
		return DT_DATADIR;
	i = used++;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			if ((size_t)snprintf(paths[i], sizeof(paths[i]),
			    "%s/../share/dt/%s", exe, name) < sizeof(paths[i]) &&
			    access(paths[i], R_OK) == 0)
				return paths[i];
		}
	}
	snprintf(paths[i], sizeof(paths[i]), "%s/%s", DT_DATADIR, name);
	return paths[i];
}

void
dt_cli_catch_signals(void (*handler)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = flags;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}
