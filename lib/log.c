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

#include "buf.h"
#include "log.h"
#include "utf8.h"

#define MAX_SECRETS 32
#define LINE_MAX_BYTES 4096

static const char *prog = "dt";
static int level = DT_LOG_INFO;
static int json_format;
static char *secrets[MAX_SECRETS];
static int nsecrets;

/* The levels as DT_LOG_LEVEL names them, and as a line does. */
static const char *level_vars[] = {"error", "warn", "info", "debug",
    "trace"};
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
		if (strcasecmp(l, level_vars[i]) == 0 ||
		    strcasecmp(l, level_names[i]) == 0 ||
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
	if (level < DT_LOG_ERROR)
		level = DT_LOG_ERROR;
	if (level > DT_LOG_TRACE)
		level = DT_LOG_TRACE;
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

/* Appends msg to b as a JSON log line's object. */
static void
json_line(struct dt_buf *b, int l, const char *msg)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];
	json_t *o;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ldZ",
	    (long)(tv.tv_usec / 1000));
	o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "prog", prog,
	    "level", level_names[l], "msg", msg);
	if (o != NULL)
		dt_buf_json(b, o, JSON_COMPACT);
	json_decref(o);
}

void
dt_log(int l, const char *fmt, ...)
{
	struct dt_buf b = {0};
	char *msg = NULL, *clean = NULL, *p;
	int saved = errno;
	va_list ap;

	if (l > level)
		return;
	l = l < DT_LOG_ERROR ? DT_LOG_ERROR : l > DT_LOG_TRACE ?
	    DT_LOG_TRACE : l;
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
		json_line(&b, l, clean);
	}
	if (b.len == 0)
		dt_buf_printf(&b, "%s: %s: %s", prog, level_names[l],
		    clean != NULL ? clean : "(out of memory)");
	/* One write(2) per line keeps lines whole between processes. */
	if (dt_buf_add(&b, "\n", 1) == 0 && !b.oom)
		dt_write_all(STDERR_FILENO, b.p, b.len);
	dt_buf_free(&b);
	free(msg);
	free(clean);
	errno = saved;
}

void
dt_log_text(const char *label, const char *text)
{
	dt_log(DT_LOG_DEBUG, "%s: %.200s", label, text ? text : "(null)");
}
