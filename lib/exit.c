/*
 * exit.c: ranking exit statuses by severity.
 */
#include "exit.h"

static int
rank(int status)
{
	switch (status) {
	case DT_EXIT_CONFIG:
		return 9;
	case DT_EXIT_USAGE:
		return 7;
	case DT_EXIT_IOERR:
		return 6;
	case DT_EXIT_UNAVAILABLE:
		return 5;
	case DT_EXIT_TEMPFAIL:
		return 4;
	case DT_EXIT_DATAERR:
		return 3;
	case DT_EXIT_PARTIAL:
		return 2;
	case DT_EXIT_PIPE:
		return 1;
	case DT_EXIT_OK:
		return 0;
	default:
		return 8;
	}
}

int
dt_exit_worse(int a, int b)
{
	return rank(b) > rank(a) ? b : a;
}
