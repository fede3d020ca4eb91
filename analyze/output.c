/*
 * output.c: what dt-analyze writes besides records (lib/ndjson.h's
 * dt_emit): errors and analyses on records, the stage record, and the
 * one --merge-stages makes of a fan-out's.
 */
#include <sys/resource.h>

#include <dirent.h>
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

static FILE *stage_file;        /* see dt_az_open_stage_file() */

static void
on_signal(int sig)
{
	dt_az_signal = sig;
}

void
dt_az_install_signals(void)
{
	dt_cli_catch_signals(on_signal, 0);
}

/* The path of "<name>.<pid>" in DT_FANOUT_STAGE_DIR, or NULL. */
static const char *
fanout_file(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("DT_FANOUT_STAGE_DIR");

	if (dir == NULL || *dir == '\0')
		return NULL;
	snprintf(buf, len, "%s/%s.%ld", dir, name, (long)getpid());
	return buf;
}

void
dt_az_open_stage_file(void)
{
	char buf[4096];
	const char *path = fanout_file("stage", buf, sizeof(buf));
	int fd;

	if (path == NULL)
		return;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 || (stage_file = fdopen(fd, "w")) == NULL) {
		dt_warn("%s: %s; writing the stage record to standard output",
		    path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

void
dt_az_close_output(void)
{
	if (stage_file != NULL)
		fclose(stage_file);
	stage_file = NULL;
}

/*
 * Under dt-fanout a job's refused records are told about at the end of
 * the run (--merge-stages): writes "<n>\t<last>" to "refused.<pid>".
 * Returns 1 when written, 0 when the caller is to say it itself.
 */
static int
stage_refused(unsigned long n, const char *last)
{
	char buf[4096];
	const char *path = fanout_file("refused", buf, sizeof(buf));
	FILE *f;

	if (path == NULL || stage_file == NULL ||
	    (f = fopen(path, "we")) == NULL)
		return 0;
	fprintf(f, "%lu\t%s", n, last);
	return fclose(f) == 0;
}

/*
 * The peak resident size of this program: the kernel's high-water mark
 * of this image (ru_maxrss also counts the image before execve).
 */
static long
peak_rss_kb(long fallback)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = fallback;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f != NULL)
		fclose(f);
	return kb;
}

/* The stage record (docs/analyze.md): a new reference, or NULL. */
static json_t *
stage_record(const struct run *x, int status, const char *message,
    int interrupted)
{
	struct rusage ru;
	json_t *c, *m;
	int i;

	c = json_pack("{sIsIsIsIsIsI}", "records", (json_int_t)x->n.records,
	    "analyzed", (json_int_t)x->n.analyzed, "errors",
	    (json_int_t)x->n.errors, "passed", (json_int_t)x->n.passed, "bad",
	    (json_int_t)x->n.bad, "skipped", (json_int_t)x->n.skipped);
	for (i = 0; i < NKINDS; i++)
		if (x->n.kind[i] > 0)
			json_object_set_new(c, dt_az_kinds[i],
			    json_integer((json_int_t)x->n.kind[i]));
	m = json_pack("{sIsfss}", "tokens", (json_int_t)x->n.tokens,
	    "cost_usd", x->n.cost, "prompt_version", x->version);
	if (x->c.dry_run) {
		json_object_set_new(m, "dry_run", json_true());
		json_object_set_new(m, "estimate", json_pack("{sIsI}",
		    "input_tokens", (json_int_t)x->n.est_in,
		    "max_output_tokens", (json_int_t)x->n.est_out));
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		json_object_set_new(m, "resources", json_pack("{sIsI}",
		    "cpu_ms", (json_int_t)(ru.ru_utime.tv_sec +
		    ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec +
		    ru.ru_stime.tv_usec) / 1000, "maxrss_kb",
		    (json_int_t)peak_rss_kb(ru.ru_maxrss)));
	if (m == NULL) {
		json_decref(c);
		return NULL;
	}
	return dt_record_stage("dt-analyze", x->run_id[0] != '\0' ?
	    x->run_id : NULL, status, message, c, m, interrupted);
}

void
dt_az_emit_stage(struct run *x, int status, const char *message,
    int interrupted)
{
	json_t *rec;

	if (dt_out_status() != 0)
		return;
	if ((rec = stage_record(x, status, message, interrupted)) == NULL) {
		dt_error("cannot encode the stage record (out of memory)");
		x->status = dt_exit_worse(x->status, DT_EXIT_IOERR);
	} else if (stage_file == NULL)
		dt_emit(rec);
	else if (json_dumpf(rec, stage_file, DT_LINE_FLAGS) < 0 ||
	    fputc('\n', stage_file) == EOF || fflush(stage_file) == EOF) {
		dt_error("cannot write the stage record: %s", strerror(errno));
		x->status = dt_exit_worse(x->status, DT_EXIT_IOERR);
	}
	json_decref(rec);
}

/* Kept as valid UTF-8: Jansson refuses anything else. */
void
dt_az_take_run_id(struct run *x, json_t *rec)
{
	const char *s = x->c.run_id_env;

	if (x->run_id[0] != '\0')
		return;
	if (s == NULL)
		s = json_string_value(json_object_get(rec, "run_id"));
	if (s != NULL)
		utf8_format(x->run_id, sizeof(x->run_id), "%s", s);
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

/* The line about rows given back; under dt-fanout --merge-stages says it. */
static void
say_refused(unsigned long n, const char *last)
{
	dt_warn("%lu record%s refused by the API with an answer other "
	    "records did not get (last: %s); given back without using an "
	    "attempt", n, n == 1 ? " was" : "s were", last);
}

int
dt_az_end_of_run(struct run *x)
{
	int interrupted = 0, br = DT_BREAKER_CLOSED;

	if (x->sh != NULL)
		br = dt_shared_breaker(x->sh);
	if (dt_az_signal) {
		interrupted = 1;
		x->status = dt_exit_worse(x->status, DT_EXIT_TEMPFAIL);
		dt_warn("interrupted by signal %d; %lu records done",
		    (int)dt_az_signal, x->n.records);
	} else if (br != DT_BREAKER_CLOSED && br != DT_BREAKER_OUTAGE) {
		/* It stopped the run itself: nothing interrupted it. */
		if (x->n.kind[K_CONFIG] > 0)
			x->status = dt_exit_worse(x->status, DT_EXIT_CONFIG);
	} else if (dt_az_stopping) {
		interrupted = 1;
		x->status = dt_exit_worse(x->status, DT_EXIT_TEMPFAIL);
	}
	if (x->n.kind[K_CONFIG] > 0 && x->last_refused[0] != '\0' &&
	    x->sh != NULL && br == DT_BREAKER_CLOSED &&
	    !stage_refused(x->n.kind[K_CONFIG], x->last_refused))
		say_refused(x->n.kind[K_CONFIG], x->last_refused);
	return interrupted;
}

/*
 * Adds the numbers among from's members into to's, member objects
 * member by member, the largest of "maxrss_kb"; a member to lacks is
 * copied.  At the top (top) the status is left to merge().
 */
static void
add(json_t *to, json_t *from, int top)
{
	json_t *v, *t;
	const char *k;
	double a, b, r;

	json_object_foreach(from, k, v) {
		t = json_object_get(to, k);
		a = json_number_value(t);
		b = json_number_value(v);
		r = strcmp(k, "maxrss_kb") == 0 ? (a > b ? a : b) : a + b;
		if (top && strcmp(k, "status") == 0)
			continue;
		if (json_is_object(t) && json_is_object(v))
			add(t, v, 0);
		else if (json_is_number(t) && json_is_number(v))
			json_object_set_new(to, k, json_is_integer(t) &&
			    json_is_integer(v) ? json_integer((json_int_t)r) :
			    json_real(r));
		else if (t == NULL)
			json_object_set(to, k, v);
	}
}

/* Adds the stage record rec into *sum (a new reference once set). */
static void
merge(json_t **sum, json_t *rec)
{
	json_t *s = *sum;
	int a, b;

	if (s == NULL) {
		*sum = json_deep_copy(rec);
		return;
	}
	a = (int)json_integer_value(json_object_get(s, "status"));
	b = (int)json_integer_value(json_object_get(rec, "status"));
	/* The message goes with the most severe status. */
	if (dt_exit_worse(a, b) != a) {
		json_object_set(s, "status", json_object_get(rec, "status"));
		json_object_set(s, "message", json_object_get(rec, "message"));
	}
	if (json_is_null(json_object_get(s, "run_id")) &&
	    json_is_string(json_object_get(rec, "run_id")))
		json_object_set(s, "run_id", json_object_get(rec, "run_id"));
	if (json_is_true(json_object_get(rec, "interrupted")))
		json_object_set_new(s, "interrupted", json_true());
	add(s, rec, 1);
}

/* Reads the stage record in path into *sum; an empty file is no record. */
static void
merge_file(json_t **sum, const char *path)
{
	json_error_t e;
	json_t *rec;
	FILE *f;
	int c;

	if ((f = fopen(path, "re")) == NULL) {
		dt_warn("%s: %s; left out of the stage record", path,
		    strerror(errno));
		return;
	}
	/* A worker that stopped before its stage record left none. */
	if ((c = getc(f)) == EOF) {
		fclose(f);
		return;
	}
	ungetc(c, f);
	rec = json_loadf(f, 0, &e);
	fclose(f);
	if (rec == NULL || !json_is_object(rec) ||
	    !json_is_string(json_object_get(rec, "stage")) ||
	    !json_is_integer(json_object_get(rec, "status")))
		dt_warn("%s: not a stage record (%s); left out of the stage "
		    "record", path, rec == NULL ? e.text : "no stage or status");
	else
		merge(sum, rec);
	json_decref(rec);
}

/* Adds the "refused.*" file path ("<n>\t<last>") into *n and last. */
static void
add_refused(const char *path, unsigned long *n, char *last, size_t len)
{
	char buf[1024], *tab;
	FILE *f;
	size_t got;

	if ((f = fopen(path, "re")) == NULL)
		return;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	if ((tab = strchr(buf, '\t')) == NULL)
		return;
	*n += strtoul(buf, NULL, 10);
	snprintf(last, len, "%s", tab + 1);
}

int
dt_az_merge_stages(const char *dir, struct dt_shared *sh)
{
	unsigned long refused = 0;
	char last[1024] = "", path[4096];
	struct dirent **names = NULL;
	json_t *sum = NULL;
	int i, n;

	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		dt_error("%s: %s", dir, strerror(errno));
		return DT_EXIT_IOERR;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (strncmp(names[i]->d_name, "stage.", 6) == 0)
			merge_file(&sum, path);
		else if (strncmp(names[i]->d_name, "refused.", 8) == 0)
			add_refused(path, &refused, last, sizeof(last));
		free(names[i]);
	}
	free(names);
	if (refused > 0 && (sh == NULL ||
	    dt_shared_breaker(sh) == DT_BREAKER_CLOSED))
		say_refused(refused, last);
	if (sum == NULL)
		return DT_EXIT_OK;
	dt_emit(sum);
	json_decref(sum);
	return dt_out_status();
}
