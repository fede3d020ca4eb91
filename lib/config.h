/*
 * config.h: settings from the environment, overridden by flags, each
 * declared once in a program's table of struct dt_opt.  A bad value gets
 * one error line naming the variable or option and the cause.
 */
#ifndef DT_CONFIG_H
#define DT_CONFIG_H

#include <stddef.h>

/* What a setting holds (its out's type) and how its text is read. */
enum dt_opt_type {
	DT_OPT_SWITCH,  /* int, 1 when the flag (no value) is given */
	DT_OPT_INT,     /* long long, a whole number in [min, max] */
	DT_OPT_NUM,     /* double, a decimal fraction in [min, max] */
	DT_OPT_BOOL,    /* int, 1/0, true/false, yes/no, on/off; flag: 1 */
	DT_OPT_TEXT,    /* const char *, borrowed */
	DT_OPT_CHOICE,  /* int, the value's index in arg ("en|ru": ru 1) */
	DT_OPT_SECRET,  /* char *, new, by dt_env_secret(); never a flag */
	DT_OPT_SHARED   /* as lib/config.c's table declares env */
};

/* A flag, a variable or both; flag over variable over default. */
struct dt_opt {
	int ch;                 /* short option letter, or 0 */
	const char *flag;       /* long option without "--", or NULL */
	const char *env;        /* environment variable, or NULL */
	enum dt_opt_type type;
	void *out;              /* where the value goes; NULL: lib/ reads it */
	const char *def;        /* the default, or NULL: out is left alone */
	long long min, max;     /* DT_OPT_INT and DT_OPT_NUM */
	const char *arg;        /* the value's name in --help, or the words */
	const char *help;       /* what it means, in a few words */
};

/* A shared setting read into p, or (DT_OPT_LIB) read by lib/ itself. */
#define DT_OPT_USE(name, p) {.env = (name), .type = DT_OPT_SHARED, .out = (p)}
#define DT_OPT_LIB(name) {.env = (name), .type = DT_OPT_SHARED}
/* The settings lib/supabase.c reads, in the table of a program using it. */
#define DT_OPT_SUPABASE DT_OPT_LIB("SUPABASE_URL"), \
	DT_OPT_LIB("SUPABASE_KEY"), DT_OPT_LIB("DT_SUPABASE_TRIES"), \
	DT_OPT_LIB("DT_SUPABASE_BACKOFF_MS")

/* A program's command line: its table, and the text around it in --help. */
struct dt_cmd {
	const char *head;       /* the synopsis and what the program does */
	const char *tail;       /* after the settings, or NULL */
	const struct dt_opt *opt;
	size_t n;
};

/*
 * Reads the environment, then the command line, into the table's outs,
 * and handles -h, -V, -v, -q and --check-config (*check; with -v it logs
 * each value and its source).  Returns 0, DT_EXIT_USAGE after a bad flag,
 * DT_EXIT_CONFIG after a bad variable (or, under --check-config, any bad
 * value).  optind is then the first operand.
 */
int dt_opts_parse(const struct dt_cmd *cmd, int argc, char **argv,
    int *check);

/* Reads shared setting env (TIMEOUT_SECONDS ...) into out; 0 or -1. */
int dt_env_shared(const char *env, void *out);

/* Parses s strictly into *out in [min, max]; 0, or -1 naming name. */
int dt_parse_ll(const char *name, const char *s, long long min,
    long long max, long long *out);

/* The variable name's value (borrowed), or def when unset or empty. */
const char *dt_env(const char *name, const char *def);

/*
 * Reads secret name, or the one line of the file name_FILE names, into
 * *out (new; NULL when unset) and registers it with dt_log_secret().
 * Returns 0, or -1 after logging: both set, white space in it ...
 */
int dt_env_secret(const char *name, char **out);

/* Registers every well-known secret (and its _FILE's) for redaction. */
void dt_config_register_secrets(void);

#endif
