/*
 * cli.c: the parts of a command line every dt program shares.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif

/* The statuses, most severe first; -1 is any other. */
static const int severity[] = {
#define DT_SEVERITY(status) status,
#include "exit.def"
#undef DT_SEVERITY
};

static long watched;
static int watch_fd = -1;

/* Is the watched process the parent of this process, or an ancestor? */
static int
ancestor(void)
{
	char path[64], buf[1024], *s;
	long p = (long)getppid();
	int depth;
	size_t n;
	FILE *f;

	for (depth = 0; p > 0 && depth < 256; depth++) {
		if (p == watched)
			return 1;
		snprintf(path, sizeof(path), "/proc/%ld/stat", p);
		if ((f = fopen(path, "re")) == NULL)
			return 0;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* The parent's pid follows the command name and the state. */
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

/*
 * A parent-death signal is not enough: a stage's parent is a subshell or
 * GNU parallel, which outlive a killed dt-entrypoint.  The pidfd becomes
 * readable when it ends; without one (seccomp, old kernels) the ancestry
 * is looked at every second.
 */
static void *
watch(void *arg)
{
	struct pollfd pfd = {.fd = watch_fd, .events = POLLIN};

	(void)arg;
	while (watch_fd >= 0) {
		if (poll(&pfd, 1, -1) > 0)
			gone();
		if (errno != EINTR)
			watch_fd = -1;
	}
	for (;;) {
		sleep(1);
		if (!ancestor())
			gone();
	}
	return NULL;
}

static int
watch_start(void)
{
	pthread_t t;
	sigset_t all, old;
	long long pid;
	int rc;

	if (dt_parse_ll("DT_WATCH_PID", dt_env("DT_WATCH_PID", "0"), 0,
	    4194304, &pid) < 0)
		return -1;
	if ((watched = (long)pid) == 0)
		return 0;
#ifdef SYS_pidfd_open
	watch_fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (watch_fd < 0 && errno == ESRCH)
		gone();
#endif
	/* After the pidfd is open, so that it is this process it watches. */
	if (!ancestor())
		gone();
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((rc = pthread_create(&t, NULL, watch, NULL)) == 0)
		pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		dt_error("DT_WATCH_PID: cannot start the watch (%s); stopping "
		    "rather than run unwatched", strerror(rc));
		_exit(DT_EXIT_TEMPFAIL);
	}
	return 0;
}

int
dt_cli_start(const char *prog)
{
	if (dt_log_init(prog) < 0 || watch_start() < 0)
		return -1;
	dt_out_init();
	dt_config_register_secrets();
	return 0;
}

/* The status's severity: higher is worse. */
static size_t
rank(int status)
{
	size_t n = sizeof(severity) / sizeof(severity[0]), i, other = 0;

	for (i = 0; i < n; i++) {
		if (severity[i] == status)
			return n - i;
		if (severity[i] == -1)
			other = n - i;
	}
	return other;
}

int
dt_exit_worse(int a, int b)
{
	return rank(b) > rank(a) ? b : a;
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
