/*
 * exit.c: ranking exit statuses by severity, from the table in exit.def.
 */
#include <stddef.h>

#include "exit.h"

/* The statuses, most severe first; -1 is any other. */
static const int order[] = {
#define DT_SEVERITY(status) status,
#include "exit.def"
#undef DT_SEVERITY
};

#define NORDER (sizeof(order) / sizeof(order[0]))

/* The status's severity: higher is worse. */
static size_t
rank(int status)
{
	size_t i, other = 0;

	for (i = 0; i < NORDER; i++) {
		if (order[i] == status)
			return NORDER - i;
		if (order[i] == -1)
			other = NORDER - i;
	}
	return other;
}

int
dt_exit_worse(int a, int b)
{
	return rank(b) > rank(a) ? b : a;
}
