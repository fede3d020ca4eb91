/*
 * log.h: diagnostics on stderr, one line each.
 *
 * Plain format:  "dt-fetch: warning: <stdin>:3: not a JSON object"
 * JSON format (DT_LOG_FORMAT=json): one object per line with the keys
 * ts, prog, level, msg, for log pipelines that parse JSON.
 *
 * Every secret registered with dt_log_secret() is replaced by "***" in
 * every line, whatever the caller passed in, so a secret cannot leak
 * through a message that quotes a URL, a header or a server's reply.
 */
#ifndef DT_LOG_H
#define DT_LOG_H

#include <stddef.h>

enum {
	DT_LOG_ERROR = 0,
	DT_LOG_WARN = 1,
	DT_LOG_INFO = 2,
	DT_LOG_DEBUG = 3,
	DT_LOG_TRACE = 4
};

/*
 * Sets the program name used as the prefix of every line and reads
 * DT_LOG_LEVEL (error, warn, info, debug, trace or 0-4) and DT_LOG_FORMAT
 * (text or json).  Returns 0, or -1 after printing an error if either
 * variable holds a value it does not know.  Call it first in main().
 */
int dt_log_init(const char *prog);

/* Returns the program name given to dt_log_init(). */
const char *dt_prog(void);

/* Raises (delta > 0, -v) or lowers (delta < 0, -q) the level, clamped. */
void dt_log_adjust(int delta);

/* Returns 1 when a line at level would be printed, else 0. */
int dt_log_enabled(int level);

/*
 * Registers a secret value to be redacted from every later log line.
 * The string is copied; values shorter than 4 bytes are ignored (they
 * would redact ordinary words).  Safe to call with NULL.
 */
void dt_log_secret(const char *value);

/*
 * Copies s into a new string with every registered secret replaced by
 * "***".  Returns NULL only when out of memory; the caller frees it.
 */
char *dt_redact(const char *s);

/* Logs one line at level; printf-style format.  Never fails. */
void dt_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define dt_error(...) dt_log(DT_LOG_ERROR, __VA_ARGS__)
#define dt_warn(...) dt_log(DT_LOG_WARN, __VA_ARGS__)
#define dt_info(...) dt_log(DT_LOG_INFO, __VA_ARGS__)
#define dt_debug(...) dt_log(DT_LOG_DEBUG, __VA_ARGS__)

/*
 * Users' message text is private: it may be logged only at debug level
 * and above.  dt_log_text() logs "label: text" (the text cut to 200
 * bytes) at DT_LOG_DEBUG and nothing at lower levels.
 */
void dt_log_text(const char *label, const char *text);

#endif
