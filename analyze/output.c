/*
 * output.c: dt-analyze's output: every record as one line, and the
 * stage record at the end.
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
#include "buf.h"
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
int dt_az_out_failed;

static int stage_fd = STDOUT_FILENO; /* see dt_az_open_stage_file() */
static struct dt_buf out_line;  /* emit_to()'s, kept between records */

/*
 * On SIGTERM or SIGINT the loops see the flag: a wait ends at once, a
 * call on the wire is abandoned by libcurl's progress callback
 * (dt_http_req's cancel), and every record not answered yet gets
 * "interrupted before the API answered".  The stage record is written
 * by dt_az_emit_stage() as at any other end.
 */
static void
on_signal(int sig)
{
	dt_az_signal = sig;
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

/* The newline goes in the same write(2): a record is written whole. */
static void
emit_to(int fd, json_t *rec)
{
	if (dt_az_out_failed)
		return;
	out_line.len = 0;
	if (dt_buf_json(&out_line, rec, JSON_COMPACT |
	    JSON_REAL_PRECISION(15)) < 0 ||
	    dt_buf_add(&out_line, "\n", 1) < 0) {
		dt_error("cannot encode a record (out of memory)");
		dt_az_out_failed = DT_EXIT_IOERR;
		return;
	}
	(void)emit_raw(fd, out_line.p, out_line.len);
}

void
dt_az_emit(json_t *rec)
{
	emit_to(STDOUT_FILENO, rec);
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

/* The stage record's counts: a new object, or NULL. */
static json_t *
stage_counts(const struct run *x)
{
	json_t *c;
	int i;

	c = json_pack("{sIsIsIsIsIsI}", "records", (json_int_t)x->n.records,
	    "analyzed", (json_int_t)x->n.analyzed, "errors",
	    (json_int_t)x->n.errors, "passed", (json_int_t)x->n.passed, "bad",
	    (json_int_t)x->n.bad, "skipped", (json_int_t)x->n.skipped);
	for (i = 0; c != NULL && i < NKINDS; i++)
		if (x->n.kind[i] > 0 && json_object_set_new(c, dt_az_kinds[i],
		    json_integer((json_int_t)x->n.kind[i])) < 0) {
			json_decref(c);
			c = NULL;
		}
	return c;
}

/*
 * The stage record's own members after counts (docs/analyze.md): a new
 * object, or NULL when out of memory.
 */
static json_t *
stage_more(const struct run *x)
{
	struct rusage ru;
	json_t *m;
	int rc = 0;

	m = json_pack("{sIsfss}", "tokens", (json_int_t)x->n.tokens,
	    "cost_usd", x->n.cost, "prompt_version", x->version);
	if (m != NULL && x->c.dry_run)
		rc = json_object_set_new(m, "dry_run", json_true()) |
		    json_object_set_new(m, "estimate", json_pack("{sIsI}",
		    "input_tokens", (json_int_t)x->n.est_in,
		    "max_output_tokens", (json_int_t)x->n.est_out));
	if (m != NULL && getrusage(RUSAGE_SELF, &ru) == 0)
		rc |= json_object_set_new(m, "resources", json_pack("{sIsI}",
		    "cpu_ms", (json_int_t)(ru.ru_utime.tv_sec +
		    ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec +
		    ru.ru_stime.tv_usec) / 1000, "maxrss_kb",
		    (json_int_t)peak_rss_kb(ru.ru_maxrss)));
	if (rc != 0) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

/* Kept as valid UTF-8: Jansson refuses anything else. */
void
dt_az_take_run_id(struct run *x, json_t *rec)
{
	const char *s;

	if (x->run_id[0] != '\0')
		return;
	s = x->c.run_id_env;
	if (s == NULL)
		s = json_string_value(json_object_get(rec, "run_id"));
	if (s != NULL)
		utf8_format(x->run_id, sizeof(x->run_id), "%s", s);
}

void
dt_az_emit_stage(struct run *x, int status, const char *message,
    int interrupted)
{
	json_t *counts, *more, *rec = NULL;

	if (dt_az_out_failed)
		return;
	counts = stage_counts(x);
	more = stage_more(x);
	if (counts != NULL && more != NULL)
		rec = dt_record_stage("dt-analyze", x->run_id[0] != '\0' ?
		    x->run_id : NULL, status, message, counts, more,
		    interrupted);
	else {
		json_decref(counts);
		json_decref(more);
	}
	if (rec == NULL) {
		dt_error("cannot encode the stage record (out of memory)");
		dt_az_out_failed = DT_EXIT_IOERR;
		return;
	}
	emit_to(stage_fd, rec);
	json_decref(rec);
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
	dt_buf_free(&out_line);
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

void
dt_az_set_analysis(struct run *x, json_t *rec, json_t *analysis,
    const struct dt_az_sent *o, const struct dt_usage *u, int pack)
{
	json_object_set_new(rec, "analysis", analysis);
	json_object_set_new(rec, "model", json_string(o->model));
	json_object_set_new(rec, "usage", dt_az_usage_json(u));
	json_object_set_new(rec, "latency_ms", json_integer(o->latency_ms));
	json_object_set_new(rec, "tries", json_integer(o->tries));
	json_object_set_new(rec, "prompt_version", json_string(x->version));
	if (pack > 0)
		json_object_set_new(rec, "pack", json_pack("{s:i}", "size",
		    pack));
	x->n.analyzed++;
}
