/*
 * output.c: what dt-analyze adds to records (errors, analyses), its
 * stage record, and the one --merge-stages makes of a fan-out's.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "exit.h"
#include "log.h"
#include "record.h"
#include "shared.h"
#include "utf8.h"

const char *const dt_az_kinds[NKINDS] = {"timeout", "rate_limited",
    "unavailable", "config", "http_4xx", "invalid_output", "too_large",
    "bad_record", "budget"};

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
	utf8_fix(msg);
	if (dt_record_set_error(rec, dt_az_kinds[k], retryable, "%s", msg) < 0)
		dt_error("out of memory");
	dt_az_count_error(x, k, status);
}

/* The line about rows given back (for a fan-out, --merge-stages's). */
static void
say_refused(json_int_t n, const char *last)
{
	dt_warn("%lld record%s refused by the API with an answer other "
	    "records did not get (last: %s); given back without using an "
	    "attempt", (long long)n, n == 1 ? " was" : "s were", last);
}

/* Adds the status the run's end calls for; the stage record's message. */
static const char *
ending(struct run *x, int *interrupted)
{
	int br = x->sh != NULL ? dt_shared_breaker(x->sh) : DT_BREAKER_CLOSED;

	*interrupted = dt_az_signal || (dt_az_stopping &&
	    (br == DT_BREAKER_CLOSED || br == DT_BREAKER_OUTAGE));
	if (*interrupted)
		x->status = dt_exit_worse(x->status, DT_EXIT_TEMPFAIL);
	else if (br != DT_BREAKER_CLOSED && br != DT_BREAKER_OUTAGE &&
	    x->n.kind[K_CONFIG] > 0)
		x->status = dt_exit_worse(x->status, DT_EXIT_CONFIG);
	if (dt_az_signal)
		dt_warn("interrupted by signal %d; %lld records done",
		    (int)dt_az_signal, (long long)x->n.records);
	if (*interrupted)
		return dt_az_signal ? "interrupted by a signal" :
		    "stopped: the run is stopping";
	switch (x->status) {
	case DT_EXIT_OK:
		return NULL;
	case DT_EXIT_CONFIG:
		return br == DT_BREAKER_AUTH ? "the API refused the key" :
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

/* Peak resident kB of this image; ru_maxrss counts the one before exec. */
static long
peak_rss_kb(long fallback)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = fallback;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		sscanf(line, "VmHWM: %ld", &kb);
	if (f != NULL)
		fclose(f);
	return kb;
}

/* The stage record, a job's (job) with the records refused one by one. */
static json_t *
stage_record(struct run *x, int job)
{
	const struct counts *n = &x->n;
	struct rusage ru;
	json_t *c, *m;
	int i, refused, interrupted;
	const char *message = ending(x, &interrupted);

	c = json_pack("{sIsIsIsIsIsI}", "records", n->records, "analyzed",
	    n->analyzed, "errors", n->errors, "passed", n->passed, "bad",
	    n->bad, "skipped", n->skipped);
	for (i = 0; i < NKINDS; i++)
		if (n->kind[i] > 0)
			json_object_set_new(c, dt_az_kinds[i],
			    json_integer(n->kind[i]));
	m = json_pack("{sIsfss}", "tokens", n->tokens, "cost_usd",
	    n->cost, "prompt_version", x->version);
	if (x->c.dry_run)
		json_object_update_new(m, json_pack("{sbs{sIsI}}", "dry_run", 1,
		    "estimate", "input_tokens", n->est_in, "max_output_tokens",
		    n->est_out));
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		json_object_set_new(m, "resources", json_pack("{sIsI}",
		    "cpu_ms", (json_int_t)(ru.ru_utime.tv_sec +
		    ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec +
		    ru.ru_stime.tv_usec) / 1000, "maxrss_kb",
		    (json_int_t)peak_rss_kb(ru.ru_maxrss)));
	refused = n->kind[K_CONFIG] > 0 && x->last_refused[0] != '\0' &&
	    x->sh != NULL && dt_shared_breaker(x->sh) == DT_BREAKER_CLOSED;
	if (refused && job)
		json_object_set_new(m, "refused", json_pack("{sIss}", "records",
		    n->kind[K_CONFIG], "last", x->last_refused));
	else if (refused)
		say_refused(n->kind[K_CONFIG], x->last_refused);
	return dt_record_stage("dt-analyze", x->run_id[0] != '\0' ?
	    x->run_id : NULL, x->status, message, c, m, interrupted);
}

void
dt_az_finish(struct run *x)
{
	const char *dir = getenv("DT_FANOUT_STAGE_DIR");
	char path[4096];
	int fd = -1;
	json_t *rec;

	if (dir != NULL && *dir != '\0' && dt_out_status() == 0) {
		snprintf(path, sizeof(path), "%s/stage.%ld", dir,
		    (long)getpid());
		if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0600)) < 0)
			dt_warn("%s: %s; writing the stage record to standard "
			    "output", path, strerror(errno));
	}
	rec = stage_record(x, fd >= 0);
	if (rec == NULL && dt_out_status() == 0) {
		dt_error("cannot encode the stage record (out of memory)");
		x->status = dt_exit_worse(x->status, DT_EXIT_IOERR);
	} else if (fd < 0 && dt_out_status() == 0)
		dt_emit(rec);
	else if (fd >= 0 && (json_dumpfd(rec, fd, DT_LINE_FLAGS) < 0 ||
	    write(fd, "\n", 1) != 1)) {
		dt_error("cannot write the stage record: %s", strerror(errno));
		x->status = dt_exit_worse(x->status, DT_EXIT_IOERR);
	}
	if (fd >= 0)
		close(fd);
	json_decref(rec);
}

/*
 * Adds from's numbers into to's (the largest maxrss_kb), recursively; a
 * string, true or a member to lacks is copied.
 */
static void
add(json_t *to, json_t *from)
{
	json_t *v, *t;
	const char *k;
	double a, b, r;

	json_object_foreach(from, k, v) {
		t = json_object_get(to, k);
		a = json_number_value(t);
		b = json_number_value(v);
		r = strcmp(k, "maxrss_kb") == 0 ? (a > b ? a : b) : a + b;
		if (json_is_object(t) && json_is_object(v))
			add(t, v);
		else if (json_is_number(t) && json_is_number(v))
			json_object_set_new(to, k, json_is_integer(t) &&
			    json_is_integer(v) ? json_integer((json_int_t)r) :
			    json_real(r));
		else if (t == NULL || json_is_string(v) || json_is_true(v))
			json_object_set(to, k, v);
	}
}

/* The stage record in path (new), or NULL (warned unless it is empty). */
static json_t *
load_stage(const char *path)
{
	json_error_t e;
	json_t *rec = json_load_file(path, 0, &e);
	struct stat sb;

	if (json_is_string(json_object_get(rec, "stage")) &&
	    json_is_integer(json_object_get(rec, "status")))
		return rec;
	/* A worker that stopped before its stage record left it empty. */
	if (rec == NULL && stat(path, &sb) == 0 && sb.st_size == 0)
		return NULL;
	dt_warn("%s: not a stage record (%s); left out of the stage record",
	    path, rec == NULL ? e.text : "no stage or status");
	json_decref(rec);
	return NULL;
}

int
dt_az_merge_stages(const char *dir, struct dt_shared *sh)
{
	struct dirent **names = NULL;
	json_t *sum = NULL, *rec, *refused;
	char path[4096];
	int i, n, a, worse;

	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		dt_error("%s: %s", dir, strerror(errno));
		return DT_EXIT_IOERR;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		rec = strncmp(names[i]->d_name, "stage.", 6) == 0 ?
		    load_stage(path) : NULL;
		free(names[i]);
		if (sum == NULL)
			sum = rec;
		if (rec == NULL || rec == sum)
			continue;
		/* The message goes with the most severe status. */
		a = (int)json_integer_value(json_object_get(sum, "status"));
		worse = dt_exit_worse(a, (int)json_integer_value(
		    json_object_get(rec, "status")));
		if (worse == a)
			json_object_del(rec, "message");
		add(sum, rec);
		json_object_set_new(sum, "status", json_integer(worse));
		json_decref(rec);
	}
	free(names);
	if (sum == NULL)
		return DT_EXIT_OK;
	refused = json_object_get(sum, "refused");
	if (refused != NULL && (sh == NULL ||
	    dt_shared_breaker(sh) == DT_BREAKER_CLOSED))
		say_refused(json_integer_value(json_object_get(refused,
		    "records")), json_string_value(json_object_get(refused,
		    "last")));
	json_object_del(sum, "refused");
	dt_emit(sum);
	json_decref(sum);
	return dt_out_status();
}
