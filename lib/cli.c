/*
 * cli.c: the parts of a command line every dt program shares.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
	static unsigned next;
	char exe[PATH_MAX], *path = paths[next++ % 8], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			if (snprintf(path, PATH_MAX, "%s/../share/dt/%s", exe,
			    name) < PATH_MAX && access(path, R_OK) == 0)
				return path;
		}
	}
	snprintf(path, PATH_MAX, "%s/%s", DT_DATADIR, name);
	return path;
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

int
dt_preflight_line(const char *service, int status, const char *fmt, ...)
{
	char msg[2048], *safe, *p;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	if ((safe = dt_redact(msg)) == NULL)
		return DT_EXIT_UNAVAILABLE;
	rc = printf("%s: %s: %s\n", service, status == 0 ? "ready" :
	    "not ready", safe);
	free(safe);
	return rc < 0 || fflush(stdout) != 0 ? DT_EXIT_IOERR : status;
}
