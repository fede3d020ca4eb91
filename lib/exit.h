/*
 * exit.h: the exit statuses of every dt program (sysexits.h values),
 * ranked by severity in exit.def, which the scripts read too.
 */
#ifndef DT_EXIT_H
#define DT_EXIT_H

enum {
	DT_EXIT_OK = 0,           /* every record handled */
	DT_EXIT_PARTIAL = 1,      /* run finished, some records failed */
	DT_EXIT_USAGE = 64,       /* bad command line */
	DT_EXIT_DATAERR = 65,     /* bad input data (records skipped) */
	DT_EXIT_UNAVAILABLE = 69, /* a service is unavailable (circuit open) */
	DT_EXIT_IOERR = 74,       /* cannot write output */
	DT_EXIT_TEMPFAIL = 75,    /* temporary failure, retry later */
	DT_EXIT_CONFIG = 78,      /* bad configuration */
	DT_EXIT_PIPE = 141        /* reader of stdout went away (128 + SIGPIPE) */
};

/*
 * Returns the more severe of a and b in exit.def's order (78, any status
 * not listed, 64 74 69 75 65 1 141 0); a when they rank the same.
 */
int dt_exit_worse(int a, int b);

#endif
