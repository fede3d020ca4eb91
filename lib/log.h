/*
 * log.h: diagnostics on stderr, one line each: "dt-fetch: warning: ...",
 * or under DT_LOG_FORMAT=json an object {ts, prog, level, msg}.  Every
 * secret registered with dt_log_secret() becomes "***" in every line.
 * And the clock the lines, retries and batches are timed by.
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
 * Sets the program name and reads DT_LOG_LEVEL (error ... trace, 0-4)
 * and DT_LOG_FORMAT (text, json).  Returns 0, or -1 after logging.
 */
int dt_log_init(const char *prog);

/* The program name given to dt_log_init(). */
const char *dt_prog(void);

/* Raises (delta > 0, -v) or lowers (delta < 0, -q) the level, clamped. */
void dt_log_adjust(int delta);

/* Returns 1 when a line at level would be printed, else 0. */
int dt_log_enabled(int level);

/* Registers a secret (copied; NULL and under 4 bytes are ignored). */
void dt_log_secret(const char *value);

/* Returns a new copy of s with the secrets as "***" (NULL: no memory). */
char *dt_redact(const char *s);

/* Logs one line at level; printf-style format.  Never fails. */
void dt_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define dt_error(...) dt_log(DT_LOG_ERROR, __VA_ARGS__)
#define dt_warn(...) dt_log(DT_LOG_WARN, __VA_ARGS__)
#define dt_info(...) dt_log(DT_LOG_INFO, __VA_ARGS__)
#define dt_debug(...) dt_log(DT_LOG_DEBUG, __VA_ARGS__)

/* Writes len bytes at p to fd through signals.  Returns 0, or -1 (errno). */
int dt_write_all(int fd, const char *p, size_t len);

/* Milliseconds on CLOCK_MONOTONIC, which every process shares. */
long long dt_now_ms(void);

/* Sleeps ms milliseconds (none when ms <= 0), resuming after a signal. */
void dt_sleep_ms(long ms);

#endif
