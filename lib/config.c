/*
 * config.c: settings from tables, strictly parsed.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"

#define SECRET_FILE_MAX ((size_t)64 * 1024)

/*
 * Parses s as a whole number into *(long long *)out (whole) or as a
 * finite fraction into *(double *)out, in [min, max].  Returns 0, or -1
 * after one error line naming name.
 */
static int
number(const char *name, const char *s, int whole, long long min,
    long long max, void *out)
{
	char *end = NULL;
	long long ll = 0;
	double d = 0;

	errno = 0;
	if (s != NULL && *s != '\0' && !isspace((unsigned char)*s)) {
		if (whole)
			ll = strtoll(s, &end, 10);
		else if (!isfinite(d = strtod(s, &end)))
			end = NULL;
	}
	if (end == NULL || *end != '\0') {
		dt_error("%s: '%s' is not %s (%lld to %lld)", name, s ? s : "",
		    whole ? "a whole number" : "a number", min, max);
		return -1;
	}
	if (errno == ERANGE || (whole ? ll < min || ll > max :
	    d < (double)min || d > (double)max)) {
		dt_error("%s: %s is out of range (%lld to %lld)", name, s, min,
		    max);
		return -1;
	}
	if (whole)
		*(long long *)out = ll;
	else
		*(double *)out = d;
	return 0;
}

int
dt_parse_ll(const char *name, const char *s, long long min, long long max,
    long long *out)
{
	return number(name, s, 1, min, max, out);
}

/* Parses 1/0, true/false, yes/no, on/off (any case) into *out. */
static int
boolean(const char *name, const char *s, int *out)
{
	static const char *words[] = {"0", "1", "false", "true", "no", "yes",
	    "off", "on"};
	size_t i;

	for (i = 0; s != NULL && i < 8; i++)
		if (strcasecmp(s, words[i]) == 0) {
			*out = (int)(i % 2);
			return 0;
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

/*
 * Reads secret name into *out (new; NULL when unset) from its variable
 * or from the one line of the file name_FILE names, and registers it.
 * Returns 0, or -1 after one error line (none when quiet) that names the
 * variable or the path, never the value.
 */
static int
secret(const char *name, char **out, int quiet)
{
	char var[128], why[600] = "", *s = NULL;
	const char *v = dt_env(name, NULL), *path;
	size_t n = 0;
	FILE *f = NULL;

	*out = NULL;
	snprintf(var, sizeof(var), "%s_FILE", name);
	if ((path = dt_env(var, NULL)) != NULL && v != NULL)
		snprintf(why, sizeof(why), "%s and %s are both set; set only "
		    "one", name, var);
	else if (v == NULL && path == NULL)
		return 0;
	else if (v != NULL && (s = strdup(v)) == NULL)
		snprintf(why, sizeof(why), "%s: out of memory", name);
	else if (v == NULL && ((f = fopen(path, "r")) == NULL ||
	    (s = malloc(SECRET_FILE_MAX + 1)) == NULL))
		snprintf(why, sizeof(why), "%s: cannot read %s: %s", var, path,
		    f == NULL ? strerror(errno) : "out of memory");
	else if (v == NULL && ((n = fread(s, 1, SECRET_FILE_MAX + 1, f)) >
	    SECRET_FILE_MAX || ferror(f)))
		snprintf(why, sizeof(why), "%s: %s: %s", var, path, ferror(f) ?
		    strerror(errno) : "file is too large");
	else if (v == NULL) {
		/* A trailing newline (CRLF too) is the file's. */
		s[n] = '\0';
		if (n > 0 && s[n - 1] == '\n')
			s[--n] = '\0';
		if (n > 0 && s[n - 1] == '\r')
			s[--n] = '\0';
		if (n == 0 || strlen(s) != n || strpbrk(s, "\r\n") != NULL)
			snprintf(why, sizeof(why), "%s: %s: %s", var, path,
			    n == 0 ? "file is empty" :
			    "file holds more than one line");
	}
	if (f != NULL)
		fclose(f);
	if (why[0] == '\0') {
		dt_log_secret(s);
		/* White space or a control character: pasted badly. */
		for (n = 0; (unsigned char)s[n] > ' ' && s[n] != 0x7f; n++)
			;
		if (s[n] != '\0')
			snprintf(why, sizeof(why), "%s: the value contains %s "
			    "(byte %zu); remove it", v != NULL ? name : var,
			    s[n] == '\n' || s[n] == '\r' ? "a line break" :
			    s[n] == ' ' || s[n] == '\t' ? "white space" :
			    "a control character", n + 1);
	}
	if (why[0] == '\0') {
		*out = s;
		return 0;
	}
	if (!quiet)
		dt_error("%s", why);
	free(s);
	return -1;
}

int
dt_env_secret(const char *name, char **out)
{
	return secret(name, out, 0);
}

void
dt_config_register_secrets(void)
{
	static const char *names[] = {"SUPABASE_KEY", "SUPABASE_ANON_KEY",
	    "SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SERVICE_ROLE_JWT",
	    "PERPLEXITY_API_KEY", "TELEGRAM_BOT_TOKEN"};
	char *s;
	size_t i;

	/* Quietly: a program that does not use one must not fail. */
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		dt_log_secret(dt_env(names[i], NULL));
		if (secret(names[i], &s, 1) == 0)
			free(s);
	}
}

/*
 * The settings several programs read, declared once.  A program's table
 * names one with DT_OPT_SHARED, with its own flag and out.
 */
static const struct dt_opt shared[] = {
	{0, NULL, "DT_DEADLINE_SECONDS", DT_OPT_INT, NULL, "3300", 1, 86400,
	    "s", "a run stops claiming after this long"},
	{0, NULL, "DT_DRAIN_SECONDS", DT_OPT_INT, NULL, "60", 0, 3600, "s",
	    "after a stop, how long work in flight may take"},
	{0, NULL, "DT_MAX_LINE", DT_OPT_INT, NULL, "1048576", 1024,
	    1073741824, "bytes", "longest input line in bytes"},
	{0, NULL, "DT_MAX_RECORDS", DT_OPT_INT, NULL, "10000", 0, 1000000000,
	    "n", "rows a run claims at most, 0 for no cap"},
	{0, NULL, "DT_RUN_ID", DT_OPT_TEXT, NULL, NULL, 0, 0, "id",
	    "the run's id"},
	{0, NULL, "DT_SHARDS", DT_OPT_INT, NULL, "1", 1, 1000, "n",
	    "pods of a scale-out run"},
	{0, NULL, "DT_SHARD_INDEX", DT_OPT_INT, NULL, "0", 0, 999, "n",
	    "this pod's shard, below DT_SHARDS"},
	{0, NULL, "DT_PROGRESS_SECONDS", DT_OPT_INT, NULL, "60", 0, 86400,
	    "s", "a progress line this often, 0 for none"},
	{0, NULL, "DT_STOP_FILE", DT_OPT_TEXT, NULL, NULL, 0, 0, "path",
	    "the run is stopping once this file exists"},
	{0, NULL, "DT_SUPABASE_BACKOFF_MS", DT_OPT_INT, NULL, "500", 0,
	    600000, "ms", "first wait before a Supabase request is retried"},
	{0, NULL, "DT_SUPABASE_TRIES", DT_OPT_INT, NULL, "5", 1, 100, "n",
	    "tries of a Supabase request through an outage"},
	{0, NULL, "SUPABASE_KEY", DT_OPT_SECRET, NULL, NULL, 0, 0, NULL,
	    "the project's secret key, sb_secret_... (or the legacy "
	    "service_role JWT)"},
	{0, NULL, "SUPABASE_URL", DT_OPT_TEXT, NULL, NULL, 0, 0, "URL",
	    "the project URL, https://xyz.supabase.co"},
	{0, NULL, "TIMEOUT_SECONDS", DT_OPT_INT, NULL, "300", 1, 86400, "s",
	    "per API call"},
};

#define NSHARED (sizeof(shared) / sizeof(shared[0]))

#define MAX_OPTS 128    /* a program's table and the common options */
#define OPT_LONG 256    /* entry i without a letter: OPT_LONG + i */

/*
 * Returns o, a DT_OPT_SHARED entry filled in from the shared table but
 * for its letter, flag and out, and its own range and meaning if any.
 */
static struct dt_opt
resolve(const struct dt_opt *o)
{
	struct dt_opt r = *o;
	size_t i;

	if (o->type != DT_OPT_SHARED)
		return r;
	for (i = 0; i < NSHARED; i++)
		if (strcmp(shared[i].env, o->env) == 0) {
			r = shared[i];
			r.ch = o->ch;
			r.flag = o->flag;
			r.out = o->out;
			if (o->min != 0 || o->max != 0) {
				r.min = o->min;
				r.max = o->max;
			}
			if (o->help != NULL)
				r.help = o->help;
			return r;
		}
	abort();        /* a program names a setting the table lacks */
}

/* Parses s as o's value into o->out.  Returns 0 or -1 (logged). */
static int
set_value(const struct dt_opt *o, const char *name, const char *s)
{
	char words[256] = "";
	const char *w;
	size_t len;
	int i;

	switch (o->type) {
	case DT_OPT_INT:
	case DT_OPT_NUM:
		return number(name, s, o->type == DT_OPT_INT, o->min, o->max,
		    o->out);
	case DT_OPT_BOOL:
		return boolean(name, s, o->out);
	case DT_OPT_CHOICE:
		for (i = 0, w = o->arg; *w != '\0'; i++, w += len + !!w[len]) {
			len = strcspn(w, "|");
			if (len == strlen(s) && strncmp(w, s, len) == 0) {
				*(int *)o->out = i;
				return 0;
			}
			snprintf(words + strlen(words), sizeof(words) -
			    strlen(words), "%s%.*s", i ? ", " : "", (int)len,
			    w);
		}
		dt_error("%s: '%s' is not one of %s", name, s, words);
		return -1;
	default:
		*(const char **)o->out = s;
		return 0;
	}
}

int
dt_env_shared(const char *env, void *out)
{
	struct dt_opt o = {0, NULL, env, DT_OPT_SHARED, out, NULL, 0, 0, NULL,
	    NULL};
	const char *v;

	o = resolve(&o);
	if ((v = dt_env(env, NULL)) != NULL)
		return set_value(&o, env, v);
	return o.def != NULL ? set_value(&o, env, o.def) : 0;
}

/*
 * Fills o with cmd's table, shared entries resolved, and the options
 * every program has (check is --check-config's out).  Returns their count.
 */
static size_t
all_options(const struct dt_cmd *cmd, int *check, struct dt_opt *o)
{
	static int dummy;
	const struct dt_opt common[] = {
		{0, "check-config", NULL, DT_OPT_SWITCH, check, NULL, 0, 0, NULL,
		    "check the settings (and read the secret files) and exit: "
		    "read no input, connect to nothing; print nothing and "
		    "exit 0 when valid, else one line per problem and exit 78 "
		    "(with -v: each setting's value and where it came from)"},
		{'h', "help", NULL, DT_OPT_SWITCH, &dummy, NULL, 0, 0, NULL,
		    "print this help and exit"},
		{'q', "quiet", NULL, DT_OPT_SWITCH, &dummy, NULL, 0, 0, NULL,
		    "log less (repeatable)"},
		{'V', "version", NULL, DT_OPT_SWITCH, &dummy, NULL, 0, 0, NULL,
		    "print the version and exit"},
		{'v', "verbose", NULL, DT_OPT_SWITCH, &dummy, NULL, 0, 0, NULL,
		    "log more (repeatable: -vv traces HTTP)"},
	};
	size_t i, n = sizeof(common) / sizeof(common[0]);

	if (cmd->n + n > MAX_OPTS)
		abort();        /* a table longer than any program's */
	for (i = 0; i < cmd->n; i++)
		o[i] = resolve(&cmd->opt[i]);
	memcpy(o + cmd->n, common, sizeof(common));
	return cmd->n + n;
}

/* Whether o takes a value on the command line. */
static int
takes_value(const struct dt_opt *o)
{
	return o->type != DT_OPT_SWITCH && o->type != DT_OPT_BOOL;
}

/*
 * Reads every variable of the table (or its default), then every flag
 * given (given[i]), counting the bad ones in *nconf and *nflag.  An
 * entry without out is only shown: lib/ reads it where it uses it.
 */
static void
read_values(const struct dt_opt *o, size_t n, const char **given,
    int check, int *nconf, int *nflag)
{
	int show_all = check && dt_log_enabled(DT_LOG_DEBUG);
	char name[128];
	const char *v, *from;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct dt_opt *p = &o[i];

		if (p->type == DT_OPT_SWITCH || (p->env == NULL && p->def == NULL))
			continue;
		snprintf(name, sizeof(name), "%s_FILE", p->env ? p->env : "");
		v = p->env != NULL ? dt_env(p->env, NULL) : NULL;
		from = "environment";
		if (p->type == DT_OPT_SECRET) {
			if (p->out != NULL && dt_env_secret(p->env, p->out) < 0) {
				++*nconf;
				continue;
			}
			v = v != NULL ? v : dt_env(name, NULL);
		} else if (v == NULL && (v = p->def) != NULL)
			from = "default";
		snprintf(name, sizeof(name), "%s", p->env ? p->env : p->flag);
		if (p->out != NULL && p->type != DT_OPT_SECRET && v != NULL &&
		    set_value(p, name, v) < 0)
			++*nconf;
		else if (show_all && given[i] == NULL && p->env != NULL &&
		    (v == NULL || p->type == DT_OPT_SECRET))
			dt_debug("%s: %s", name, v != NULL ? "set" : "not set");
		else if (show_all && given[i] == NULL && p->env != NULL)
			dt_debug("%s = %s (%s)", name, v, from);
	}
	for (i = 0; i < n; i++) {
		if (given[i] == NULL)
			continue;
		snprintf(name, sizeof(name), "--%s", o[i].flag);
		if (set_value(&o[i], name, given[i]) < 0)
			++*nflag;
		else if (show_all)
			dt_debug("%s = %s (flag)", name, given[i]);
	}
}

/* Help: the column where an option's meaning starts, and the width. */
#define HELP_COL 27
#define HELP_WIDTH 79

/* Writes left, then text from column HELP_COL, wrapped at HELP_WIDTH. */
static void
help_line(const char *left, const char *text)
{
	size_t at = strlen(left), len;
	int first = 1;

	fputs(left, stdout);
	if (at + 2 > HELP_COL) {
		putchar('\n');
		at = 0;
	}
	for (; *text != '\0'; text += len + strspn(text + len, " ")) {
		len = strcspn(text, " ");
		if (first || at + 1 + len > HELP_WIDTH) {
			if (!first)
				putchar('\n'), at = 0;
			printf("%*s", (int)(HELP_COL - at), "");
			at = HELP_COL;
		} else
			putchar(' '), at++;
		fwrite(text, 1, len, stdout);
		at += len;
		first = 0;
	}
	putchar('\n');
}

/* Writes o's meaning with its variable, default and range into buf. */
static void
meaning(const struct dt_opt *o, int with_env, char *buf, size_t len)
{
	char range[64] = "";

	if (o->type == DT_OPT_INT || o->type == DT_OPT_NUM)
		snprintf(range, sizeof(range), "%s%lld to %lld",
		    (with_env && o->env) || o->def ? ", " : "", o->min, o->max);
	if ((with_env && o->env) || o->def || range[0])
		snprintf(buf, len, "%s (%s%s%s%s%s)", o->help,
		    with_env && o->env ? o->env : "",
		    with_env && o->env && o->def ? ", " : "",
		    o->def ? "default " : "", o->def ? o->def : "", range);
	else
		snprintf(buf, len, "%s", o->help);
}

/* Options by letter, case aside, capital first; long-only by name. */
static int
by_letter(const void *a, const void *b)
{
	const struct dt_opt *x = a, *y = b;
	int cx = x->ch ? x->ch : x->flag[0], cy = y->ch ? y->ch : y->flag[0];

	if (tolower(cx) != tolower(cy))
		return tolower(cx) - tolower(cy);
	if (cx != cy)
		return cx - cy;
	return strcmp(x->flag, y->flag);
}

/*
 * Writes cmd's help: head, the options sorted by letter with each one's
 * variable, default and range, the variables without a flag, then tail.
 * Returns the exit status.
 */
static int
opts_help(const struct dt_cmd *cmd)
{
	struct dt_opt o[MAX_OPTS], sorted[MAX_OPTS];
	char left[128], text[512];
	int check = 0, env_only = 0;
	size_t n = all_options(cmd, &check, o), i, k = 0;

	fputs(cmd->head, stdout);
	putchar('\n');
	for (i = 0; i < n; i++)
		if (o[i].flag != NULL)
			sorted[k++] = o[i];
	qsort(sorted, k, sizeof(*sorted), by_letter);
	for (i = 0; i < k; i++) {
		const struct dt_opt *p = &sorted[i];

		snprintf(left, sizeof(left), "  %c%c%c --%s%s%s",
		    p->ch ? '-' : ' ', p->ch ? p->ch : ' ', p->ch ? ',' : ' ',
		    p->flag, takes_value(p) ? " " : "",
		    takes_value(p) ? p->arg : "");
		meaning(p, 1, text, sizeof(text));
		help_line(left, text);
	}
	for (i = 0; i < n; i++) {
		if (o[i].flag != NULL || o[i].env == NULL)
			continue;
		if (!env_only++)
			fputs("\nEnvironment:\n", stdout);
		snprintf(left, sizeof(left), "  %s%s", o[i].env,
		    o[i].type == DT_OPT_SECRET ? "[_FILE]" : "");
		meaning(&o[i], 0, text, sizeof(text));
		help_line(left, text);
	}
	if (cmd->tail != NULL) {
		putchar('\n');
		fputs(cmd->tail, stdout);
	}
	return dt_cli_close_stdout(DT_EXIT_OK);
}

int
dt_opts_parse(const struct dt_cmd *cmd, int argc, char **argv, int *check)
{
	struct option lo[MAX_OPTS + 1] = {{0}};
	struct dt_opt o[MAX_OPTS];
	const char *given[MAX_OPTS] = {0};
	char optstring[2 * MAX_OPTS + 1];
	size_t n = all_options(cmd, check, o), i, k = 0, nl = 0;
	int ch, nconf = 0, nflag = 0;

	*check = 0;
	for (i = 0; i < n; i++) {
		if (o[i].ch != 0) {
			optstring[k++] = (char)o[i].ch;
			if (takes_value(&o[i]))
				optstring[k++] = ':';
		}
		if (o[i].flag != NULL)
			lo[nl++] = (struct option){o[i].flag, takes_value(&o[i]) ?
			    required_argument : no_argument, NULL,
			    o[i].ch != 0 ? o[i].ch : OPT_LONG + (int)i};
	}
	optstring[k] = '\0';
	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((ch = getopt_long(argc, argv, optstring, lo, NULL)) != -1) {
		for (i = 0; i < n; i++)
			if (ch == (o[i].ch != 0 ? o[i].ch : OPT_LONG + (int)i))
				break;
		if (i == n)
			return dt_cli_usage_error(NULL);
		if (ch == 'h')
			exit(opts_help(cmd));
		if (ch == 'V') {
			printf("%s %s\n", dt_prog(), DT_VERSION);
			exit(dt_cli_close_stdout(DT_EXIT_OK));
		}
		if (ch == 'v' || ch == 'q')
			dt_log_adjust(ch == 'v' ? 1 : -1);
		else if (o[i].type == DT_OPT_SWITCH)
			*(int *)o[i].out = 1;
		else    /* the variables are read first: a flag overrides */
			given[i] = o[i].type == DT_OPT_BOOL ? "1" : optarg;
	}
	read_values(o, n, given, *check, &nconf, &nflag);
	if (*check)
		return nconf + nflag > 0 ? DT_EXIT_CONFIG : 0;
	if (nconf > 0)
		return DT_EXIT_CONFIG;
	return nflag > 0 ? dt_cli_usage_error(NULL) : 0;
}
