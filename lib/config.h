/*
 * config.h: configuration from the environment, overridden by flags.
 *
 * A program declares each of its settings once, in a table of struct
 * dt_opt (its variable, flag, type, default, range and meaning), and
 * dt_opts_parse() reads the command line and the environment from it,
 * checks every value and writes --help.  The functions below it parse
 * single values.  Every function prints one error line naming the
 * variable or option and the cause when a value is bad.
 */
#ifndef DT_CONFIG_H
#define DT_CONFIG_H

#include <stddef.h>

/* What a setting holds and how its text is read. */
enum dt_opt_type {
	DT_OPT_SWITCH,          /* a flag without a value: the int is set to 1 */
	DT_OPT_INT,             /* long long, a whole number in [min, max] */
	DT_OPT_NUM,             /* double, a decimal fraction in [min, max] */
	DT_OPT_BOOL,            /* int, 1/0, true/false, yes/no, on/off; as a
				 * flag it takes no value and means 1 */
	DT_OPT_TEXT,            /* const char *, borrowed from argv or the
				 * environment (or the default) */
	DT_OPT_CHOICE,          /* int: the index of the value among arg's
				 * words ("en|ru": en 0, ru 1) */
	DT_OPT_SECRET,          /* char *, new (the caller frees it): from
				 * env or env_FILE (dt_env_secret()); never a
				 * flag */
	DT_OPT_SHARED           /* a setting several programs read: its type,
				 * default, range and meaning are those of
				 * lib/config.c's table for env, but for a
				 * range or meaning the entry gives */
};

/*
 * One setting of a program.  A setting has a flag, a variable or both;
 * the flag overrides the variable, which overrides the default.  The
 * default is text, read as the variable would be, so it is checked
 * like any other value and shown as it is in --help.
 */
struct dt_opt {
	int ch;                 /* short option letter, or 0 */
	const char *flag;       /* long option without "--", or NULL */
	const char *env;        /* environment variable, or NULL */
	enum dt_opt_type type;
	void *out;              /* where the value goes (see the type); NULL
				 * for one read elsewhere (by lib/, or later),
				 * listed for --help and --check-config -v */
	const char *def;        /* the default, or NULL: out is left alone */
	long long min, max;     /* DT_OPT_INT and DT_OPT_NUM */
	const char *arg;        /* the value's name in --help ("n"); a
				 * choice's words ("en|ru") */
	const char *help;       /* what it means, in a few words */
};

/*
 * A shared setting in a program's table: read into out, or (DT_OPT_LIB)
 * read by lib/ itself and listed for --help and --check-config -v.
 */
#define DT_OPT_USE(name, p) {.env = (name), .type = DT_OPT_SHARED, .out = (p)}
#define DT_OPT_LIB(name) {.env = (name), .type = DT_OPT_SHARED}

/* A program's command line: its table, and the text around it in --help. */
struct dt_cmd {
	const char *head;       /* the synopsis and what the program does */
	const char *tail;       /* after the settings, or NULL */
	const struct dt_opt *opt;
	size_t n;
};

/*
 * Reads the command line and the environment into the table's outs.
 * Every program has -h/--help (prints dt_opts_help() and exits 0),
 * -V/--version (exits 0), -v/--verbose and -q/--quiet (the log level)
 * and --check-config (sets *check) besides its table.  Every variable is
 * read and checked, also when a flag overrides it, then every flag.
 * Under --check-config at debug level (-v) each setting's value and
 * where it came from are logged, a secret's as "set" only.
 * Returns 0; DT_EXIT_USAGE after an unknown option or a bad flag value
 * (with "Try '<prog> --help'."); DT_EXIT_CONFIG after a bad variable,
 * or under --check-config any bad value.  optind is then the first
 * operand.
 */
int dt_opts_parse(const struct dt_cmd *cmd, int argc, char **argv,
    int *check);

/*
 * Writes cmd's help: head, the options sorted by letter with each
 * one's variable, default and range, the variables that have no flag,
 * then tail.  Returns 0, DT_EXIT_IOERR when stdout cannot be written or
 * DT_EXIT_TEMPFAIL when out of memory.
 */
int dt_opts_help(const struct dt_cmd *cmd);

/*
 * Reads the setting several programs share whose variable is env
 * (lib/config.c's table: TIMEOUT_SECONDS, DT_MAX_LINE, ...) into out,
 * as a DT_OPT_SHARED entry would.  Returns 0, or -1 after logging a bad
 * value.
 */
int dt_env_shared(const char *env, void *out);

/*
 * Parses s as a whole decimal number in [min, max] and stores it in
 * *out.  name is what the error message calls the value ("BATCH_SIZE",
 * "--batch-size").  Leading/trailing garbage, overflow and an empty
 * string are errors.  Returns 0 or -1.
 */
int dt_parse_ll(const char *name, const char *s, long long min,
    long long max, long long *out);

/* Like dt_parse_ll() for a finite decimal fraction in [min, max]. */
int dt_parse_double(const char *name, const char *s, double min, double max,
    double *out);

/* Parses 1/0, true/false, yes/no, on/off (any case). */
int dt_parse_bool(const char *name, const char *s, int *out);

/*
 * Returns the value of the environment variable name, or def when it is
 * unset or empty.  The string is borrowed from the environment.
 */
const char *dt_env(const char *name, const char *def);

/* Reads a whole-number variable; def when unset or empty. */
int dt_env_ll(const char *name, long long def, long long min, long long max,
    long long *out);

/*
 * Reads a secret: the variable name itself, or the file named by
 * name_FILE (one trailing newline, CRLF included, is trimmed).  Setting
 * both is an error.  A value holding white space or a control character
 * (a line break left in it) is an error naming the variable, never the
 * value.  The value is registered with dt_log_secret().
 * Stores a new string in *out (NULL when neither is set; the caller
 * decides whether that is an error) and returns 0, or -1 on error.
 * The caller frees *out.
 */
int dt_env_secret(const char *name, char **out);

/*
 * Registers with dt_log_secret() the values of every well-known secret
 * variable (SUPABASE_KEY, PERPLEXITY_API_KEY, TELEGRAM_BOT_TOKEN, Supabase's
 * other keys, and their _FILE variants' contents) whether or not this
 * program uses them, so that no program can print another program's
 * secret.
 */
void dt_config_register_secrets(void);

#endif
