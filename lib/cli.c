/*
 * cli.c: the parts of a command line every dt program shares.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "exit.h"
#include "log.h"

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
