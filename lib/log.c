/*
 * log.c: one line per diagnostic on stderr, with secrets redacted.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "utf8.h"

#define MAX_SECRETS 32
#define LINE_MAX_BYTES 4096

static const char *prog = "dt";
static int level = DT_LOG_INFO;
static int json_format;
static char *secrets[MAX_SECRETS];
static int nsecrets;

/* The levels as a line names them; DT_LOG_LEVEL also takes "warn". */
static const char *level_names[] = {"error", "warning", "info", "debug",
    "trace"};

int
dt_log_init(const char *name)
{
	const char *f = getenv("DT_LOG_FORMAT"), *l = getenv("DT_LOG_LEVEL");
	int rc = 0, i;

	prog = name;
	level = DT_LOG_INFO;
	json_format = f != NULL && strcmp(f, "json") == 0;
	if (f != NULL && *f != '\0' && !json_format && strcmp(f, "text")) {
		dt_error("DT_LOG_FORMAT: '%s' is not one of text, json", f);
		rc = -1;
	}
	if (l == NULL || *l == '\0')
		return rc;
	for (i = DT_LOG_TRACE; i >= 0; i--)
		if (strcasecmp(l, level_names[i]) == 0 ||
		    (i == DT_LOG_WARN && strcasecmp(l, "warn") == 0) ||
		    (l[0] == '0' + i && l[1] == '\0'))
			break;
	if (i < 0) {
		dt_error("DT_LOG_LEVEL: '%s' is not one of error, warn, info, "
		    "debug, trace", l);
		return -1;
	}
	level = i;
	return rc;
}

const char *
dt_prog(void)
{
	return prog;
}

void
dt_log_adjust(int delta)
{
	level += delta;
	level = level < DT_LOG_ERROR ? DT_LOG_ERROR : level > DT_LOG_TRACE ?
	    DT_LOG_TRACE : level;
}

int
dt_log_enabled(int l)
{
	return l <= level;
}

void
dt_log_secret(const char *value)
{
	int i;

	if (value == NULL || strlen(value) < 4 || nsecrets == MAX_SECRETS)
		return;
	for (i = 0; i < nsecrets; i++)
		if (strcmp(secrets[i], value) == 0)
			return;
	if ((secrets[nsecrets] = strdup(value)) != NULL)
		nsecrets++;
}

char *
dt_redact(const char *s)
{
	char *out, *p;
	int i;

	if ((out = strdup(s)) == NULL)
		return NULL;
	/* In place: "***" is shorter than any registered secret. */
	for (i = 0; i < nsecrets; i++) {
		size_t n = strlen(secrets[i]);

		while ((p = strstr(out, secrets[i])) != NULL) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + n, strlen(p + n) + 1);
		}
	}
	return out;
}

int
dt_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Returns msg as a new JSON log line's object text, or NULL. */
static char *
json_line(int l, const char *msg)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];
	json_t *o;
	char *s;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ",
	    (long)(tv.tv_usec / 1000));
	o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "prog", prog,
	    "level", level_names[l], "msg", msg);
	s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

void
dt_log(int l, const char *fmt, ...)
{
	char *msg = NULL, *clean = NULL, *line = NULL, *p;
	int saved = errno, n = -1;
	va_list ap;

	if (l > level)
		return;
	l = l < DT_LOG_ERROR ? DT_LOG_ERROR : l;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	/* Redacted whole before the cut: no prefix of a secret is left. */
	if (msg == NULL || (clean = dt_redact(msg)) == NULL)
		clean = strdup("(out of memory)");
	if (clean != NULL && strlen(clean) > LINE_MAX_BYTES)
		memcpy(clean + LINE_MAX_BYTES - 4, "...", 4);
	for (p = clean; p != NULL && *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (json_format && clean != NULL) {
		utf8_fix(clean);        /* Jansson takes UTF-8 only */
		if ((p = json_line(l, clean)) != NULL)
			n = asprintf(&line, "%s\n", p);
		free(p);
	}
	if (n < 0)
		n = asprintf(&line, "%s: %s: %s\n", prog, level_names[l],
		    clean != NULL ? clean : "(out of memory)");
	/* One write(2) per line keeps lines whole between processes. */
	if (n >= 0)
		dt_write_all(STDERR_FILENO, line, (size_t)n);
	else
		line = NULL;
	free(line);
	free(msg);
	free(clean);
	errno = saved;
}

long long
dt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
dt_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
