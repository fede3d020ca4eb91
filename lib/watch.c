/*
 * watch.c: a stage ends with the process that started its run.
 *
 * A parent-death signal is not enough: a stage's parent is a subshell
 * or GNU parallel, which outlive a killed dt-entrypoint.  So a stage
 * watches dt-entrypoint itself, through a pidfd that becomes readable
 * when it ends.
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

/* Is pid the parent of this process, or an ancestor? */
static int
ancestor(long pid)
{
	char path[64], buf[1024], *s;
	long p = (long)getppid();
	int depth;
	size_t n;
	FILE *f;

	for (depth = 0; p > 0 && depth < 256; depth++) {
		if (p == pid)
			return 1;
		/* The parent's parent, after the command name in /proc. */
		snprintf(path, sizeof(path), "/proc/%ld/stat", p);
		if ((f = fopen(path, "re")) == NULL)
			return 0;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if ((s = strrchr(buf, ')')) == NULL ||
		    sscanf(s + 1, " %*c %ld", &p) != 1)
			return 0;
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
	struct pollfd pfd = {.fd = watch_fd, .events = POLLIN};
	int n;

	(void)arg;
	while (watch_fd >= 0) {
		if ((n = poll(&pfd, 1, -1)) > 0)
			gone();
		if (n < 0 && errno != EINTR)
			watch_fd = -1;
	}
	/* Without a pidfd (before Linux 5.3, or it failed): look. */
	for (;;) {
		sleep(1);
		if (!ancestor(watched))
			gone();
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
	/* After the pidfd is open, so that it is this process it watches. */
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
		dt_error("DT_WATCH_PID: cannot start the watch (%s); stopping "
		    "rather than run unwatched", strerror(rc));
		_exit(DT_EXIT_TEMPFAIL);
	}
	return 0;
}
