/*
 * config.c: strict parsing of configuration values.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

#define SECRET_FILE_MAX ((size_t)64 * 1024)

int
dt_parse_ll(const char *name, const char *s, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		goto bad;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		goto bad;
	if (errno == ERANGE || v < min || v > max) {
		dt_error("%s: %s is out of range (%lld to %lld)", name, s, min,
		    max);
		return -1;
	}
	*out = v;
	return 0;
bad:
	dt_error("%s: '%s' is not a whole number (%lld to %lld)", name,
	    s ? s : "", min, max);
	return -1;
}

int
dt_parse_double(const char *name, const char *s, double min, double max,
    double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		goto bad;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || !isfinite(v))
		goto bad;
	if (errno == ERANGE || v < min || v > max) {
		dt_error("%s: %s is out of range (%g to %g)", name, s, min,
		    max);
		return -1;
	}
	*out = v;
	return 0;
bad:
	dt_error("%s: '%s' is not a number (%g to %g)", name, s ? s : "", min,
	    max);
	return -1;
}

int
dt_parse_bool(const char *name, const char *s, int *out)
{
	static const char *yes[] = {"1", "true", "yes", "on"};
	static const char *no[] = {"0", "false", "no", "off"};
	size_t i;

	for (i = 0; s != NULL && i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	dt_error("%s: '%s' is not a boolean (1/0, true/false, yes/no, on/off)",
	    name, s ? s : "");
	return -1;
}

const char *
dt_env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : def;
}

int
dt_env_ll(const char *name, long long def, long long min, long long max,
    long long *out)
{
	const char *v = dt_env(name, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return dt_parse_ll(name, v, min, max, out);
}

int
dt_env_double(const char *name, double def, double min, double max,
    double *out)
{
	const char *v = dt_env(name, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return dt_parse_double(name, v, min, max, out);
}

int
dt_env_bool(const char *name, int def, int *out)
{
	const char *v = dt_env(name, NULL);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	return dt_parse_bool(name, v, out);
}

/*
 * Reads the secret file path into a new string with one trailing newline
 * trimmed.  Returns NULL on error, after logging unless quiet.  The message names the
 * variable and the path, never the contents.
 */
static char *
read_secret_file(const char *var, const char *path, int quiet)
{
	char *buf;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		if (!quiet)
			dt_error("%s: cannot read %s: %s", var, path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(SECRET_FILE_MAX + 1)) == NULL) {
		fclose(f);
		if (!quiet)
			dt_error("%s: out of memory", var);
		return NULL;
	}
	n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
	if (ferror(f) || n > SECRET_FILE_MAX) {
		if (!quiet)
			dt_error("%s: %s: %s", var, path,
		    ferror(f) ? strerror(errno) : "file is too large");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || memchr(buf, '\0', n) != NULL ||
	    strpbrk(buf, "\r\n") != NULL) {
		if (!quiet)
			dt_error("%s: %s: %s", var, path,
		    n == 0 ? "file is empty" : "file holds more than one line");
		free(buf);
		return NULL;
	}
	return buf;
}

int
dt_env_secret(const char *name, char **out)
{
	char filevar[128];
	const char *v, *path;
	char *s;
	size_t i;

	*out = NULL;
	snprintf(filevar, sizeof(filevar), "%s_FILE", name);
	v = dt_env(name, NULL);
	path = dt_env(filevar, NULL);
	if (v != NULL && path != NULL) {
		dt_error("%s and %s are both set; set only one", name, filevar);
		return -1;
	}
	if (v != NULL)
		s = strdup(v);
	else if (path != NULL) {
		if ((s = read_secret_file(filevar, path, 0)) == NULL)
			return -1;
	} else
		return 0;
	if (s == NULL) {
		dt_error("%s: out of memory", name);
		return -1;
	}
	dt_log_secret(s);
	/*
	 * No key or token holds white space or a control character: one
	 * that does was pasted with a newline (a Kubernetes Secret made
	 * with echo), and every call would be refused.  Named, not shown.
	 */
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) {
			dt_error("%s: the value contains %s (byte %zu); remove "
			    "it", v != NULL ? name : filevar, s[i] == '\n' ||
			    s[i] == '\r' ? "a line break" : s[i] == ' ' ||
			    s[i] == '\t' ? "white space" : "a control character",
			    i + 1);
			free(s);
			return -1;
		}
	*out = s;
	return 0;
}

void
dt_config_register_secrets(void)
{
	static const char *names[] = {"SUPABASE_KEY", "SUPABASE_ANON_KEY",
	    "SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SERVICE_ROLE_JWT",
	    "PERPLEXITY_API_KEY", "TELEGRAM_BOT_TOKEN"};
	char filevar[128];
	const char *path;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *s;

		dt_log_secret(dt_env(names[i], NULL));
		snprintf(filevar, sizeof(filevar), "%s_FILE", names[i]);
		if ((path = dt_env(filevar, NULL)) == NULL)
			continue;
		/* Quietly: a program that does not use it must not fail. */
		if ((s = read_secret_file(filevar, path, 1)) != NULL) {
			dt_log_secret(s);
			free(s);
		}
	}
}
