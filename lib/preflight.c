/*
 * preflight.c: the one line of a stage's --preflight (see preflight.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit.h"
#include "log.h"
#include "preflight.h"

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
	if (rc < 0 || fflush(stdout) != 0)
		return DT_EXIT_IOERR;
	return status;
}
