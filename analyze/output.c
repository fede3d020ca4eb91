/*
 * output.c: dt-analyze's output: every record as one line, and the
 * stage record at the end, also from the signal handler.
 */
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "cli.h"
#include "exit.h"
#include "log.h"
#include "record.h"
#include "shared.h"
#include "utf8.h"

const char *const dt_az_kinds[NKINDS] = {"timeout", "rate_limited",
    "unavailable", "config", "http_4xx", "invalid_output", "too_large",
    "bad_record", "budget"};

volatile sig_atomic_t dt_az_signal;
volatile sig_atomic_t dt_az_in_call;
struct run *dt_az_run;
int dt_az_out_failed;

static int stage_fd = STDOUT_FILENO; /* see dt_az_open_stage_file() */
static struct {
	char *s;
	size_t len, cap;
} out_line;                     /* emit()'s buffer, kept between records */

/* Async-signal-safe appending for the handler's stage record. */
static void
sput(char *buf, size_t len, size_t *o, const char *s)
{
	while (*s != '\0' && *o + 1 < len)
		buf[(*o)++] = *s++;
}

static void
sputu(char *buf, size_t len, size_t *o, unsigned long long v)
{
	char d[24];
	int i = 0;

	do
		d[i++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (i > 0 && *o + 1 < len)
		buf[(*o)++] = d[--i];
}

/*
 * On SIGTERM or SIGINT between calls, the main loop notices the flag
 * and ends cleanly.  During a call libcurl would wait for the server,
 * possibly for the whole timeout, so the handler writes the stage record
 * itself (with async-signal-safe code only) and exits at once; the
 * record in flight is not written and comes back when its lease expires.
 */
static void
on_signal(int sig)
{
	char buf[2048];
	size_t o = 0;
	struct run *x = dt_az_run;
	unsigned long long nano;
	int i;

	dt_az_signal = sig;
	if (!dt_az_in_call || x == NULL)
		return;
	sput(buf, sizeof(buf), &o, "{\"stage\":\"dt-analyze\",\"run_id\":");
	if (x->run_id[0] != '\0') {
		sput(buf, sizeof(buf), &o, "\"");
		sput(buf, sizeof(buf), &o, x->run_id);
		sput(buf, sizeof(buf), &o, "\"");
	} else
		sput(buf, sizeof(buf), &o, "null");
	sput(buf, sizeof(buf), &o, ",\"status\":75,\"message\":\"interrupted "
	    "by a signal\",\"counts\":{\"records\":");
	sputu(buf, sizeof(buf), &o, x->n.records);
	sput(buf, sizeof(buf), &o, ",\"analyzed\":");
	sputu(buf, sizeof(buf), &o, x->n.analyzed);
	sput(buf, sizeof(buf), &o, ",\"errors\":");
	sputu(buf, sizeof(buf), &o, x->n.errors);
	sput(buf, sizeof(buf), &o, ",\"passed\":");
	sputu(buf, sizeof(buf), &o, x->n.passed);
	sput(buf, sizeof(buf), &o, ",\"bad\":");
	sputu(buf, sizeof(buf), &o, x->n.bad);
	sput(buf, sizeof(buf), &o, ",\"skipped\":");
	sputu(buf, sizeof(buf), &o, x->n.skipped);
	for (i = 0; i < NKINDS; i++) {
		if (x->n.kind[i] == 0)
			continue;
		sput(buf, sizeof(buf), &o, ",\"");
		sput(buf, sizeof(buf), &o, dt_az_kinds[i]);
		sput(buf, sizeof(buf), &o, "\":");
		sputu(buf, sizeof(buf), &o, x->n.kind[i]);
	}
	sput(buf, sizeof(buf), &o, "},\"tokens\":");
	sputu(buf, sizeof(buf), &o, (unsigned long long)x->n.tokens);
	sput(buf, sizeof(buf), &o, ",\"cost_usd\":");
	nano = (unsigned long long)(x->n.cost * 1e9 + 0.5);
	sputu(buf, sizeof(buf), &o, nano / 1000000000ULL);
	sput(buf, sizeof(buf), &o, ".");
	for (i = 100000000; i > 0; i /= 10)
		sputu(buf, sizeof(buf), &o, (nano / (unsigned long long)i) % 10);
	sput(buf, sizeof(buf), &o, ",\"prompt_version\":\"");
	sput(buf, sizeof(buf), &o, x->version);
	sput(buf, sizeof(buf), &o, "\",\"interrupted\":true}\n");
	(void)!write(stage_fd, buf, o);
	_exit(DT_EXIT_TEMPFAIL);
}

/*
 * Under dt-fanout the stage record goes to a file of its own in
 * DT_FANOUT_STAGE_DIR, "stage.<pid>": the fan-out starts hundreds of
 * short-lived workers and writes one stage record for them all
 * (--merge-stages).  Without DT_FANOUT_STAGE_DIR it goes to stdout.
 */
void
dt_az_open_stage_file(void)
{
	const char *dir = getenv("DT_FANOUT_STAGE_DIR");
	char path[4096];
	int fd;

	if (dir == NULL || *dir == '\0')
		return;
	snprintf(path, sizeof(path), "%s/stage.%ld", dir, (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0)
		dt_warn("%s: %s; writing the stage record to standard output",
		    path, strerror(errno));
	else
		stage_fd = fd;
}

/*
 * Under dt-fanout a job's refused records are told about at the end of
 * the run (--merge-stages), once the circuit's state is final: writes
 * "<n>\t<last>" to "refused.<pid>" beside the stage file.  Returns 1
 * when written, 0 when the caller is to say it itself.
 */
static int
stage_refused(unsigned long n, const char *last)
{
	const char *dir = getenv("DT_FANOUT_STAGE_DIR");
	char path[4096];
	FILE *f;

	if (dir == NULL || *dir == '\0' || stage_fd == STDOUT_FILENO)
		return 0;
	snprintf(path, sizeof(path), "%s/refused.%ld", dir, (long)getpid());
	if ((f = fopen(path, "we")) == NULL)
		return 0;
	fprintf(f, "%lu\t%s", n, last);
	return fclose(f) == 0;
}

/*
 * Writes n bytes of s to fd (stdout or the stage file).  Returns 0, or
 * -1 once a write failed: EPIPE (the reader went away) silently,
 * anything else logged; dt_az_out_failed then holds the exit status for
 * it, and every later call fails at once.
 */
static int
emit_raw(int fd, const char *s, size_t n)
{
	int rc = 0;

	if (dt_az_out_failed)
		return -1;
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno != EPIPE)
				dt_error("cannot write %s: %s", fd == STDOUT_FILENO ?
				    "standard output" : "the stage record",
				    strerror(errno));
			dt_az_out_failed = errno == EPIPE ? DT_EXIT_PIPE :
			    DT_EXIT_IOERR;
			rc = -1;
			break;
		}
		s += w;
		n -= (size_t)w;
	}
	return rc;
}

/* Appends n bytes of s to out_line (json_dump_callback's callback). */
static int
append_line(const char *s, size_t n, void *arg)
{
	(void)arg;
	if (out_line.len + n + 1 > out_line.cap) {
		size_t cap = out_line.cap ? out_line.cap : 4096;
		char *p;

		while (cap < out_line.len + n + 1)
			cap *= 2;
		if ((p = realloc(out_line.s, cap)) == NULL)
			return -1;
		out_line.s = p;
		out_line.cap = cap;
	}
	memcpy(out_line.s + out_line.len, s, n);
	out_line.len += n;
	return 0;
}

/* The newline goes in the same write(2): a record is written whole. */
void
dt_az_emit(json_t *rec)
{
	if (dt_az_out_failed)
		return;
	out_line.len = 0;
	if (json_dump_callback(rec, append_line, NULL, JSON_COMPACT |
	    JSON_REAL_PRECISION(15)) < 0 || append_line("\n", 1, NULL) < 0) {
		dt_error("cannot encode a record (out of memory)");
		dt_az_out_failed = DT_EXIT_IOERR;
		return;
	}
	(void)emit_raw(STDOUT_FILENO, out_line.s, out_line.len);
}

/*
 * The peak resident size of this program.  ru_maxrss also counts the
 * process image before execve (under parallel, a forked perl), so the
 * kernel's per-image high-water mark is read when there is one.
 */
static long
peak_rss_kb(long fallback)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = fallback;

	if (f == NULL)
		return fallback;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* Renders the stage record (see docs/pipeline.md) into buf. */
static size_t
render_stage(struct run *x, int status, const char *message, int interrupted,
    char *buf, size_t len)
{
	struct rusage ru;
	size_t o = 0;
	int i, n;

#define PUT(...) do { \
	n = snprintf(buf + o, o < len ? len - o : 0, __VA_ARGS__); \
	if (n > 0) \
		o += (size_t)n; \
} while (0)
	PUT("{\"stage\":\"dt-analyze\",\"run_id\":");
	if (x->run_id[0] != '\0')
		PUT("\"%s\"", x->run_id);
	else
		PUT("null");
	PUT(",\"status\":%d,\"message\":", status);
	if (message != NULL)
		PUT("\"%s\"", message);
	else
		PUT("null");
	PUT(",\"counts\":{\"records\":%lu,\"analyzed\":%lu,\"errors\":%lu,"
	    "\"passed\":%lu,\"bad\":%lu,\"skipped\":%lu", x->n.records,
	    x->n.analyzed, x->n.errors, x->n.passed, x->n.bad, x->n.skipped);
	for (i = 0; i < NKINDS; i++)
		if (x->n.kind[i] > 0)
			PUT(",\"%s\":%lu", dt_az_kinds[i], x->n.kind[i]);
	PUT("},\"tokens\":%lld,\"cost_usd\":%.9g,\"prompt_version\":\"%s\"",
	    x->n.tokens, x->n.cost, x->version);
	if (x->c.dry_run)
		PUT(",\"dry_run\":true,\"estimate\":{\"input_tokens\":%lld,"
		    "\"max_output_tokens\":%lld}", x->n.est_in, x->n.est_out);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		PUT(",\"resources\":{\"cpu_ms\":%ld,\"maxrss_kb\":%ld}",
		    (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
		    (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000,
		    peak_rss_kb(ru.ru_maxrss));
	PUT(",\"interrupted\":%s}\n", interrupted ? "true" : "false");
#undef PUT
	if (o >= len)
		o = len - 1;
	return o;
}

/* The run id goes into JSON as it is (render_stage): keep it safe. */
void
dt_az_take_run_id(struct run *x, json_t *rec)
{
	const char *s;
	size_t i;

	if (x->run_id[0] != '\0')
		return;
	s = x->c.run_id_env;
	if (s == NULL)
		s = json_string_value(json_object_get(rec, "run_id"));
	if (s == NULL)
		return;
	for (i = 0; s[i] != '\0' && i + 1 < sizeof(x->run_id); i++)
		x->run_id[i] = (char)((s[i] == '"' || s[i] == '\\' ||
		    (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ?
		    '_' : s[i]);
	x->run_id[i] = '\0';
}

void
dt_az_emit_stage(struct run *x, int status, const char *message,
    int interrupted)
{
	char stage[2048];
	size_t n;

	if (dt_az_out_failed)
		return;
	n = render_stage(x, status, message, interrupted, stage, sizeof(stage));
	(void)emit_raw(stage_fd, stage, n);
}

void
dt_az_install_signals(void)
{
	dt_cli_catch_signals(on_signal, 0);
}

void
dt_az_close_output(void)
{
	if (stage_fd != STDOUT_FILENO)
		close(stage_fd);
	stage_fd = STDOUT_FILENO;
	free(out_line.s);
	out_line.s = NULL;
	out_line.len = out_line.cap = 0;
}

void
dt_az_count_error(struct run *x, int k, int status)
{
	x->n.errors++;
	x->n.kind[k]++;
	x->status = dt_exit_worse(x->status, status);
}

void
dt_az_set_error(struct run *x, json_t *rec, int k, int retryable, int status,
    const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Jansson refuses a message cut inside a character. */
	utf8_fix(msg);
	if (dt_record_set_error(rec, dt_az_kinds[k], retryable, "%s", msg) < 0)
		dt_error("out of memory");
	dt_az_count_error(x, k, status);
}

json_t *
dt_az_usage_json(const struct dt_usage *u)
{
	return json_pack("{s:I, s:I, s:I, s:f}", "prompt_tokens",
	    (json_int_t)u->input_tokens, "completion_tokens",
	    (json_int_t)u->output_tokens, "total_tokens",
	    (json_int_t)u->total_tokens, "cost_usd", u->cost_usd);
}

const char *
dt_az_final_message(struct run *x, int interrupted)
{
	if (interrupted)
		return dt_az_signal ? "interrupted by a signal" :
		    "stopped: the run is stopping";
	switch (x->status) {
	case DT_EXIT_OK:
		return NULL;
	case DT_EXIT_CONFIG:
		return dt_shared_breaker(x->sh) == DT_BREAKER_AUTH ?
		    "the API refused the key" :
		    "the API refused the run's setup";
	case DT_EXIT_UNAVAILABLE:
		return "circuit open: the API is unavailable";
	case DT_EXIT_TEMPFAIL:
		return x->n.kind[K_BUDGET] ? "the run's budget is spent" :
		    "temporary failure";
	case DT_EXIT_DATAERR:
		return "bad input records";
	case DT_EXIT_PARTIAL:
		return "some records failed";
	default:
		return "output failed";
	}
}

int
dt_az_end_of_run(struct run *x)
{
	int interrupted = 0;

	if (dt_az_signal) {
		interrupted = 1;
		x->status = dt_exit_worse(x->status, DT_EXIT_TEMPFAIL);
		dt_warn("interrupted by signal %d; %lu records done",
		    (int)dt_az_signal, x->n.records);
	} else if (x->sh != NULL && dt_shared_breaker(x->sh) !=
	    DT_BREAKER_CLOSED && dt_shared_breaker(x->sh) != DT_BREAKER_OUTAGE) {
		/* It stopped the run itself: nothing interrupted it. */
		if (x->n.kind[K_CONFIG] > 0)
			x->status = dt_exit_worse(x->status, DT_EXIT_CONFIG);
	} else if (dt_az_stopping) {
		interrupted = 1;
		x->status = dt_exit_worse(x->status, DT_EXIT_TEMPFAIL);
	}
	if (x->n.kind[K_CONFIG] > 0 && x->last_refused[0] != '\0' &&
	    x->sh != NULL && dt_shared_breaker(x->sh) == DT_BREAKER_CLOSED &&
	    !stage_refused(x->n.kind[K_CONFIG], x->last_refused))
		dt_warn("%lu record%s refused by the API with an answer other "
		    "records did not get (last: %s); given back without using "
		    "an attempt", x->n.kind[K_CONFIG],
		    x->n.kind[K_CONFIG] == 1 ? " was" : "s were",
		    x->last_refused);
	return interrupted;
}
