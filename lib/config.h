/*
 * config.h: configuration from the environment, overridden by flags.
 *
 * Every function here prints one error line naming the variable or
 * option and the cause when a value is bad, and returns -1; the caller
 * exits with DT_EXIT_CONFIG (or DT_EXIT_USAGE for a bad flag).
 */
#ifndef DT_CONFIG_H
#define DT_CONFIG_H

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

/* Reads an integer/fraction/boolean variable; def when unset or empty. */
int dt_env_ll(const char *name, long long def, long long min, long long max,
    long long *out);
int dt_env_double(const char *name, double def, double min, double max,
    double *out);
int dt_env_bool(const char *name, int def, int *out);

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
