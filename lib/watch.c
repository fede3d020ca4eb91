/*
 * watch.c: a stage ends with the process that started its run.
 *
 * A parent-death signal (PR_SET_PDEATHSIG) is not enough here: a stage's
 * parent is the pipeline's subshell, or GNU parallel, which outlive a
 * killed dt-entrypoint; and it fires when the parent thread ends, not
 * the process.  So each stage watches dt-entrypoint itself through a
 * pidfd, which becomes readable when that process ends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "config.h"
#include "exit.h"
#include "log.h"
#include "watch.h"

static long watched = -1;
static int watch_fd = -1;

/* The parent of process p from /proc/p/stat, or -1. */
static long
parent_of(long p)
{
	char path[64], buf[1024], *s;
	long pp = -1;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", p);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip it whole. */
	if ((s = strrchr(buf, ')')) == NULL || sscanf(s + 1, " %*c %ld",
	    &pp) != 1)
		return -1;
	return pp;
}

/* Is pid the parent of this process, or an ancestor? */
static int
ancestor(long pid)
{
	long p = (long)getppid();
	int depth;

	for (depth = 0; p > 0 && depth < 256; depth++) {
		if (p == pid)
			return 1;
		p = parent_of(p);
	}
	return 0;
}

static void
gone(void)
{
	dt_error("the process that started this run (DT_WATCH_PID %ld) has "
	    "ended; stopping at once", watched);
	_exit(DT_EXIT_TEMPFAIL);
}

static void *
watch(void *arg)
{
	struct pollfd pfd;

	(void)arg;
	pfd.fd = watch_fd;
	pfd.events = POLLIN;
	for (;;) {
		if (watch_fd >= 0) {
			int n = poll(&pfd, 1, -1);

			if (n > 0)
				gone();
			/* The pidfd failing: go on by looking. */
			if (n < 0 && errno != EINTR)
				watch_fd = -1;
		} else {
			/* No pidfd (Linux before 5.3): look once a second. */
			sleep(1);
			if (!ancestor(watched))
				gone();
		}
	}
	return NULL;
}

int
dt_watch_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	long long pid;
	int rc;

	if (dt_env_ll("DT_WATCH_PID", 0, 1, 4194304, &pid) < 0)
		return -1;
	if (pid == 0)
		return 0;
	watched = (long)pid;
#ifdef SYS_pidfd_open
	watch_fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (watch_fd < 0 && errno == ESRCH)
		gone();
#endif
	/*
	 * Checked after the pidfd is open (close-on-exec, as pidfds are), so
	 * that it is this process the pidfd watches.
	 */
	if (!ancestor(watched))
		gone();
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, watch, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		/* Unwatched, this stage could outlive the run: it stops. */
		dt_error("DT_WATCH_PID: cannot start the watch (%s); stopping "
		    "rather than run unwatched", strerror(rc));
		_exit(DT_EXIT_TEMPFAIL);
	}
	return 0;
}
