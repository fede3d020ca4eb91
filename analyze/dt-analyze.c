/*
 * dt-analyze: adds a model's analysis of its text, checked against a
 * JSON schema, or an "error" to every source record (docs/analyze.md).
 */
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

volatile sig_atomic_t dt_az_signal;

static void
on_signal(int sig)
{
	dt_az_signal = sig;
}

/* A text over DT_MAX_TEXT_BYTES: cut with a marker (0) or rejected (-1). */
static int
cut_text(struct run *x, json_t *rec, struct dt_az_item *t)
{
	size_t keep, len = t->len;

	if (x->c.reject_large) {
		dt_warn("%s: id %s: text of %zu bytes is over the limit of "
		    "%lld", x->where, t->id, len, x->c.max_text);
		dt_az_set_error(x, rec, K_TOOLARGE, 0, DT_EXIT_PARTIAL,
		    "text of %zu bytes is over the limit of %lld bytes", len,
		    x->c.max_text);
		return -1;
	}
	keep = utf8_cut(t->text, len, (size_t)x->c.max_text);
	if (asprintf(&t->cut, "%.*s\n[... cut by dt-analyze: %zu of %zu bytes "
	    "kept]", (int)keep, t->text, keep, len) < 0) {
		t->cut = NULL;
		dt_error("out of memory");
		dt_az_set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "out of memory");
		return -1;
	}
	t->text = t->cut;
	t->len = strlen(t->cut);
	json_object_set_new(rec, "text_cut", json_pack("{s:I, s:I}",
	    "kept_bytes", (json_int_t)keep, "total_bytes", (json_int_t)len));
	return 0;
}

/*
 * Handles one record up to its call.  Returns 1 with t filled in (but
 * for t->rec) for a record to analyze, 0 for one to write as it is.
 */
static int
prepare(struct run *x, json_t *rec, struct dt_az_item *t)
{
	json_t *id, *tx = json_object_get(rec, "text");
	json_t *pv = json_object_get(rec, "prompt_version");
	const char *why, *s = json_string_value(tx);
	const char *run_id = json_string_value(json_object_get(rec, "run_id"));
	size_t len = json_string_length(tx);

	x->n.records++;
	if (x->run_id[0] == '\0' && run_id != NULL)
		utf8_format(x->run_id, sizeof(x->run_id), "%s", run_id);
	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		x->n.passed++;
		return 0;
	}
	if (dt_record_id(rec, &id, &why) < 0) {
		dt_warn("%s: %s", x->where, why);
		dt_az_set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
		return 0;
	}
	dt_record_id_str(id, t->id, sizeof(t->id));
	if (json_object_get(rec, "error") != NULL ||
	    json_object_get(rec, "skip") != NULL ||
	    (json_object_get(rec, "analysis") != NULL && json_is_string(pv) &&
	    strcmp(json_string_value(pv), x->version) == 0)) {
		x->n.passed++;
		return 0;
	}
	/* No text (a sticker, a photo, a join) is data: dt-store skips it. */
	why = json_is_null(tx) ? "the text is null" : s == NULL ? NULL :
	    len == 0 ? "the text is empty" : strspn(s, " \t\r\n") == len ?
	    "the text is blank" : NULL;
	if (why != NULL) {
		dt_debug("%s: id %s: %s: skipped", x->where, t->id, why);
		x->n.skipped++;
		json_object_set_new(rec, "skip", json_pack("{ssss}", "reason",
		    "no_text", "message", why));
		return 0;
	}
	why = tx == NULL ? "missing text" : s == NULL ? "text must be a "
	    "string" : memchr(s, '\0', len) != NULL ? "text contains a NUL "
	    "character" : NULL;
	if (why != NULL) {
		dt_warn("%s: id %s: %s", x->where, t->id, why);
		dt_az_set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
		return 0;
	}
	t->text = s;
	t->len = len;
	t->cut = NULL;
	dt_debug("text: %.200s", t->text);      /* private: debug only */
	if (t->len > (size_t)x->c.max_text && cut_text(x, rec, t) < 0)
		return 0;
	snprintf(t->where, sizeof(t->where), "%s", x->where);
	return 1;
}

/* Whether no call will come from this worker (waiting for a call slot). */
static int
no_call_coming(void *arg)
{
	struct run *x = arg;
	const char *stop = x->c.stop_file;

	return dt_az_signal || (stop != NULL && access(stop, F_OK) == 0) ||
	    dt_shared_breaker(x->sh) != DT_BREAKER_CLOSED;
}

/*
 * Every line becomes one output line, in input order.  A group is sent
 * once it is full or (but in a dt-fanout job, whose input is one group
 * written a piece at a time) no more input is ready.
 */
static void
read_records(struct run *x, struct dt_reader *r, struct dt_az_group *g)
{
	json_t *rec;
	int rc;

	while (!dt_az_signal && dt_out_status() == 0) {
		if (g->ncalls > 0 && (g->ncalls == x->c.pack ||
		    g->nheld == x->c.pack * DT_AZ_HOLD || (x->c.slots == 0 &&
		    !dt_reader_wait(r, 0)))) {
			dt_az_flush(x, g);
			continue;
		}
		if ((rc = dt_reader_next(r, &rec)) == DT_NDJSON_EOF)
			break;
		x->where = dt_reader_where(r);
		if (rc == DT_NDJSON_ERROR)
			x->status = dt_exit_worse(x->status, DT_EXIT_DATAERR);
		else if (rc != DT_NDJSON_BAD)
			dt_az_hold(x, g, rec, prepare(x, rec,
			    &g->calls[g->ncalls]));
		else {
			x->n.records++;
			x->n.bad++;
			dt_az_count_error(x, K_BAD, DT_EXIT_DATAERR);
			if (rec != NULL)
				dt_az_hold(x, g, rec, 0);
		}
	}
	/* Records read before a signal still get their lines. */
	if (g->ncalls > 0)
		dt_az_flush(x, g);
}

/* Analyzes the records of the files (stdin when none); the status. */
static int
run_records(struct run *x, char **files, int nfiles)
{
	static struct dt_az_group g;
	struct dt_reader *r = NULL;
	char err[512];

	if (!x->c.dry_run && dt_az_open_state(x) < 0)
		return DT_EXIT_CONFIG;
	dt_cli_catch_signals(on_signal, 0);
	if (x->c.run_id_env != NULL)
		utf8_format(x->run_id, sizeof(x->run_id), "%s",
		    x->c.run_id_env);
	r = dt_reader_new(files, nfiles, (size_t)x->c.max_line);
	if (r == NULL) {
		dt_error("out of memory");
		x->status = DT_EXIT_TEMPFAIL;
	} else if (x->sh != NULL && x->c.slots > 0 && dt_shared_call_slot(
	    x->sh, (int)x->c.slots, no_call_coming, x, err, sizeof(err)) < 0) {
		/* Under dt-fanout a worker holds a call slot until it exits. */
		dt_error("%s", err);
		x->status = DT_EXIT_TEMPFAIL;
	} else {
		read_records(x, r, &g);
		dt_az_finish(x);
	}
	dt_reader_free(r);
	return dt_exit_worse(x->status, dt_out_status());
}

int
main(int argc, char **argv)
{
	static struct run x;
	int rc;

	if (dt_cli_start("dt-analyze") < 0)
		return DT_EXIT_CONFIG;
	if ((rc = dt_az_setup(&x, argc, argv)) != 0)
		x.status = rc;
	else if (x.c.merge_dir != NULL)
		x.status = dt_az_merge_stages(x.c.merge_dir,
		    dt_az_open_state(&x) == 0 ? x.sh : NULL);
	else if (x.c.show_version)
		printf("%s\n", x.version);
	else if (x.c.estimate)
		x.status = dt_az_estimate(&x);
	else if (x.c.preflight)
		x.status = dt_az_preflight(&x);
	else if (!x.c.check_config)
		x.status = run_records(&x, argv + optind, argc - optind);
	dt_az_teardown(&x);
	return dt_cli_close_stdout(x.status);
}
