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

#include "log.h"

#define MAX_SECRETS 32
#define LINE_MAX_BYTES 4096

static const char *prog = "dt";
static int level = DT_LOG_INFO;
static int json_format;
static char *secrets[MAX_SECRETS];
static int nsecrets;

static const char *level_names[] = {"error", "warning", "info", "debug",
    "trace"};

static int
parse_level(const char *s)
{
	static const char *names[] = {"error", "warn", "info", "debug",
	    "trace"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "warning") == 0)
		return DT_LOG_WARN;
	if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0')
		return s[0] - '0';
	return -1;
}

int
dt_log_init(const char *name)
{
	const char *s;
	int rc = 0;

	prog = name;
	level = DT_LOG_INFO;
	json_format = 0;
	if ((s = getenv("DT_LOG_FORMAT")) != NULL && *s != '\0') {
		if (strcmp(s, "json") == 0)
			json_format = 1;
		else if (strcmp(s, "text") != 0) {
			dt_error("DT_LOG_FORMAT: '%s' is not one of text, json",
			    s);
			rc = -1;
		}
	}
	if ((s = getenv("DT_LOG_LEVEL")) != NULL && *s != '\0') {
		int l = parse_level(s);

		if (l < 0) {
			dt_error("DT_LOG_LEVEL: '%s' is not one of error, "
			    "warn, info, debug, trace", s);
			rc = -1;
		} else
			level = l;
	}
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
	/*
	 * Replacing in place only ever shortens the string ("***" is
	 * shorter than any registered secret), so one buffer suffices.
	 */
	for (i = 0; i < nsecrets; i++) {
		size_t n = strlen(secrets[i]);

		while ((p = strstr(out, secrets[i])) != NULL) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + n, strlen(p + n) + 1);
		}
	}
	return out;
}

/* Appends s to buf (capacity cap, length *len) as JSON string content. */
static void
json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u;

	for (u = (const unsigned char *)s; *u != '\0'; u++) {
		char esc[7];
		size_t n;

		if (*u == '"' || *u == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*u;
			n = 2;
		} else if (*u == '\n') {
			memcpy(esc, "\\n", 2);
			n = 2;
		} else if (*u == '\t') {
			memcpy(esc, "\\t", 2);
			n = 2;
		} else if (*u < 0x20 || *u == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*u >> 4];
			esc[5] = hex[*u & 15];
			n = 6;
		} else {
			esc[0] = (char)*u;
			n = 1;
		}
		if (*len + n + 1 >= cap)
			return;
		memcpy(buf + *len, esc, n);
		*len += n;
		buf[*len] = '\0';
	}
}

/* dt_log() with the arguments in ap. */
static void
vlog(int l, const char *fmt, va_list ap)
{
	char line[LINE_MAX_BYTES * 2], *msg, *clean, *p;
	int saved = errno;
	size_t len;

	if (l > level)
		return;
	/*
	 * Redact the whole message before cutting it to length, so a
	 * secret that straddles the cut cannot leave a prefix behind.
	 */
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	clean = msg ? dt_redact(msg) : NULL;
	free(msg);
	if (clean != NULL) {
		if (strlen(clean) > LINE_MAX_BYTES)
			memcpy(clean + LINE_MAX_BYTES - 4, "...", 4);
		/* A diagnostic is one line, whatever the message held. */
		for (p = clean; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	if (l < DT_LOG_ERROR)
		l = DT_LOG_ERROR;
	if (l > DT_LOG_TRACE)
		l = DT_LOG_TRACE;
	if (json_format) {
		struct timeval tv;
		struct tm tm;
		char ts[64];

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		len = (size_t)snprintf(line, sizeof(line),
		    "{\"ts\":\"%s.%03ldZ\",\"prog\":\"%s\",\"level\":\"%s\","
		    "\"msg\":\"", ts, (long)(tv.tv_usec / 1000), prog,
		    level_names[l]);
		json_escape(line, sizeof(line) - 3, &len,
		    clean ? clean : "(out of memory)");
		memcpy(line + len, "\"}\n", 4);
	} else
		snprintf(line, sizeof(line), "%s: %s: %s\n", prog,
		    level_names[l], clean ? clean : "(out of memory)");
	free(clean);
	/* One write(2) per line keeps lines whole between processes. */
	len = strlen(line);
	p = line;
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		len -= (size_t)n;
	}
	errno = saved;
}

void
dt_log(int l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(l, fmt, ap);
	va_end(ap);
}

void
dt_log_text(const char *label, const char *text)
{
	if (!dt_log_enabled(DT_LOG_DEBUG))
		return;
	dt_log(DT_LOG_DEBUG, "%s: %.200s", label, text ? text : "(null)");
}
