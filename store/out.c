/*
 * out.c: dt-store's status lines: queued, written, and made from the
 * server's outcomes (store.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "record.h"
#include "utf8.h"

#include "store.h"

void
dt_store_worse(struct dt_store *s, int status)
{
	s->status = dt_exit_worse(s->status, status);
}

/*
 * Writes the queued status lines to stdout.  Like dt_emit(): a reader
 * that went away (EPIPE) ends the output quietly, another error is
 * logged once; either way nothing more is written.
 */
void
dt_store_out_write(struct dt_store *s)
{
	size_t done = 0;

	while (s->out_status == 0 && done < s->out.len) {
		ssize_t n = write(STDOUT_FILENO, s->out.p + done,
		    s->out.len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EPIPE)
				s->out_status = DT_EXIT_PIPE;
			else {
				dt_error("cannot write standard output: %s",
				    strerror(errno));
				s->out_status = DT_EXIT_IOERR;
			}
			dt_store_worse(s, s->out_status);
			break;
		}
		done += (size_t)n;
	}
	s->out.len = 0;
}

/* Writes rec as a line of its own, after the queued lines. */
void
dt_store_emit(struct dt_store *s, json_t *rec)
{
	dt_store_out_write(s);
	if (s->out_status != 0)
		return;
	if (dt_emit(rec) < 0)
		dt_store_worse(s, dt_out_status() != 0 ? dt_out_status() :
		    DT_EXIT_IOERR);
}

/* Counts a status. */
static void
count(struct dt_store *s, const char *status)
{
	if (strcmp(status, "stored") == 0)
		s->stored++;
	else if (strcmp(status, "skipped") == 0)
		s->skipped++;
	else if (strcmp(status, "unchanged") == 0)
		s->unchanged++;
	else if (strcmp(status, "released") == 0)
		s->released++;
	else
		s->failed++;
}

/* Writes rec with "store" (a new reference, stolen) and "status" set. */
void
dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status)
{
	json_object_set_new(rec, "store", store);
	json_object_set_new(rec, "status", json_string(status));
	count(s, status);
	dt_store_emit(s, rec);
}

/* A bad input record: say why, keep what it had. */
void
dt_store_emit_bad(struct dt_store *s, json_t *rec, const char *why)
{
	if (s->where != NULL)
		dt_warn("%s: %s", s->where, why);
	if (json_object_get(rec, "error") == NULL)
		dt_record_set_error(rec, "bad_record", 0, "%s", why);
	s->bad++;
	dt_store_worse(s, DT_EXIT_DATAERR);
	dt_store_emit_status(s, rec, json_pack("{ssss}", "outcome",
	    "bad_record", "message", why), "failed");
}

/*
 * Ends the status line of batch record i with "store" (store_len bytes of
 * JSON text at store) and "status", and queues it.  The queue is written
 * out whenever it grows past 64 KiB, and at the end of every batch.
 */
void
dt_store_line_end(struct dt_store *s, size_t i, const char *store,
    size_t store_len, const char *status)
{
	const struct dt_store_slot *sl = &s->slot[i];
	struct dt_buf *o = &s->out;
	size_t start = o->len;
	json_t *w;
	int rc = 0;

	count(s, status);
	if (sl->reused && strcmp(status, "stored") == 0)
		s->reused++;
	rc |= dt_buf_add(o, s->lines.p + sl->line, sl->line_len);
	/* A record of nothing but dropped fields is "{" by now. */
	if (sl->line_len > 1)
		rc |= dt_buf_add(o, ",", 1);
	/* A following row stored with its row's analysis shows it. */
	if (sl->follows && strcmp(status, "stored") == 0 &&
	    json_is_object(w = json_object_get(s->wanted, s->sids.p +
	    sl->as))) {
		rc |= dt_buf_json(o, w, DT_LINE_FLAGS | JSON_EMBED);
		rc |= dt_buf_add(o, ",", 1);
	}
	rc |= dt_buf_add(o, "\"store\":", 8);
	rc |= dt_buf_add(o, store, store_len);
	rc |= dt_buf_add(o, ",\"status\":\"", 11);
	rc |= dt_buf_add(o, status, strlen(status));
	rc |= dt_buf_add(o, "\"}\n", 3);
	if (rc != 0) {
		o->len = start;
		dt_error("out of memory: the status line of record %s is lost",
		    s->sids.p + sl->sid);
		dt_store_worse(s, DT_EXIT_TEMPFAIL);
	}
	if (o->len >= 65536)
		dt_store_out_write(s);
}

/* Ends batch record i's line as not stored, for the reason why. */
void
dt_store_line_not_stored(struct dt_store *s, size_t i, const char *why)
{
	json_t *st = json_pack("{ssss}", "outcome", "not_stored", "message",
	    why);
	char *text = st != NULL ? json_dumps(st, DT_LINE_FLAGS) : NULL;

	s->not_stored++;
	if (text != NULL)
		dt_store_line_end(s, i, text, strlen(text), "failed");
	else
		dt_store_line_end(s, i, "null", 4, "failed");
	free(text);
	json_decref(st);
}

/*
 * Maps a dt_settle or dt_reclaim outcome to the status line: "stored",
 * "skipped" (nothing to analyze), "released" (not analyzed: an outage, a
 * setup error, the deadline or the budget; the row is back in the queue
 * with its attempt), "unchanged" (--reclaim left the row alone: settled
 * meanwhile, held by a live run, or waiting to be claimed again), else
 * "failed" (lost included: the result was not written).
 */
static const char *
status_of(const char *outcome)
{
	if (strcmp(outcome, "stored") == 0)
		return "stored";
	if (strcmp(outcome, "skipped") == 0)
		return "skipped";
	if (strcmp(outcome, "released") == 0)
		return "released";
	if (strcmp(outcome, "settled") == 0 || strcmp(outcome, "held") == 0 ||
	    strcmp(outcome, "pending") == 0)
		return "unchanged";
	return "failed";
}

/*
 * Says why a record came back "lost", one line per record, and how to
 * store its result anyway.
 */
static void
warn_lost(struct dt_store *s, size_t i)
{
	const char *sid = s->sids.p + s->slot[i].sid;
	int q = s->slot[i].sid_is_str;
	int n = (int)utf8_cut(sid, strlen(sid), 64);

	s->lost++;
	if (s->reclaim)
		dt_warn("record %s%.*s%s: not reclaimed: the id is not in "
		    "dt_results", q ? "\"" : "", n, sid, q ? "\"" : "");
	else
		dt_warn("record %s%.*s%s: lost: run %s no longer holds this "
		    "row (its lease expired and another run took it over, or "
		    "the id is not in dt_results); its result is in this "
		    "run's analyze output, which dt-store --reclaim stores "
		    "once no live run holds the row", q ? "\"" : "", n, sid,
		    q ? "\"" : "", s->run_id);
}

/* Writes the status lines of records [from, to) from the reply rows. */
void
dt_store_emit_outcomes(struct dt_store *s, size_t from, size_t to, json_t *rows)
{
	struct dt_buf st = {NULL, 0, 0, 0};
	json_t *by_id = json_object(), *row, *hit;
	size_t i, j;

	/*
	 * Match the reply to the records by source id; an id given twice
	 * has one outcome (the last row the server sent for it).
	 */
	json_array_foreach(rows, j, row) {
		const char *r = json_string_value(json_object_get(row,
		    "source_id"));

		if (r != NULL && by_id != NULL)
			json_object_set(by_id, r, row);
	}
	if (by_id == NULL) {
		for (i = from; i < to; i++)
			dt_store_line_not_stored(s, i, "out of memory");
		dt_store_worse(s, DT_EXIT_TEMPFAIL);
		return;
	}
	for (i = from; i < to; i++) {
		json_t *outcome, *attempts, *o;

		hit = json_object_get(by_id, s->sids.p + s->slot[i].sid);
		outcome = json_object_get(hit, "outcome");
		attempts = json_object_get(hit, "attempts");
		if (!json_is_string(outcome)) {
			dt_store_line_not_stored(s, i, "the server did not "
			    "report on this record");
			dt_store_worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		st.len = 0;
		o = json_pack("{sOsO}", "outcome", outcome, "attempts",
		    attempts != NULL ? attempts : json_null());
		if (o == NULL || dt_buf_json(&st, o, DT_LINE_FLAGS) < 0) {
			json_decref(o);
			dt_store_line_not_stored(s, i, "out of memory");
			dt_store_worse(s, DT_EXIT_TEMPFAIL);
			continue;
		}
		json_decref(o);
		if (strcmp(json_string_value(outcome), "waiting") == 0) {
			dt_store_wait_keep(s, i);
			continue;
		}
		if (strcmp(json_string_value(outcome), "lost") == 0)
			warn_lost(s, i);
		if (strcmp(status_of(json_string_value(outcome)), "failed") ==
		    0)
			dt_store_worse(s, DT_EXIT_PARTIAL);
		dt_store_line_end(s, i, st.p, st.len,
		    status_of(json_string_value(outcome)));
	}
	dt_buf_free(&st);
	json_decref(by_id);
}
