/*
 * send.c: sending a batch to dt_settle (or dt_reclaim), through outages and
 * bad records (store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "utf8.h"

#include "store.h"

/*
 * Notes when the run stopped, once: a first SIGTERM or SIGINT, or the
 * stop file (whose age says when it appeared: it may have been there
 * long before an outage made us look).
 */
static void
note_stop(struct dt_store *s)
{
	struct timespec now;
	struct stat st;
	long long age;

	if (s->stop_ms > 0)
		return;
	if (dt_store_got_signal != 0)
		s->stop_ms = dt_now_ms();
	else if (s->stop_file != NULL && stat(s->stop_file, &st) == 0) {
		clock_gettime(CLOCK_REALTIME, &now);
		age = ((long long)now.tv_sec - (long long)st.st_mtim.tv_sec) *
		    1000 + (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
		s->stop_ms = dt_now_ms() - (age > 0 ? age : 0);
		if (s->stop_ms <= 0)
			s->stop_ms = 1;
	}
}

/*
 * When to give up on an outage that began at start: after
 * DT_STORE_OUTAGE_SECONDS, and no later than half of DT_DRAIN_SECONDS
 * after the run stopped (the other half is for the rest of the pipeline
 * and the report before the entrypoint ends it).
 */
static long long
give_up_at(struct dt_store *s, long long start)
{
	long long until = start + s->outage_s * 1000;

	note_stop(s);
	if (s->stop_ms > 0 && s->stop_ms + s->drain_s * 500 < until)
		until = s->stop_ms + s->drain_s * 500;
	return until;
}

/*
 * Waits through an outage (why: what the last request got): probes
 * Supabase with a call of the same function on no records, after each
 * wait (exponential backoff with full jitter, the shared policy), until
 * it answers (returns 0: send the batch again) or it is time to give up
 * (returns -1).  A stop that comes meanwhile shortens the wait.  Each try
 * logs one line.
 */
static int
outage_wait(struct dt_store *s, const char *path, const char *why)
{
	static const struct dt_http_policy pol = {
		.max_tries = 1, .base_ms = 250, .cap_ms = 5000,
	};
	long long start = dt_now_ms(), until, wait;
	char last[sizeof(((struct dt_sb_result *)0)->message)];
	json_t *probe;
	int n = 0, rc = -1;

	if (give_up_at(s, start) <= start)
		return -1;
	if ((probe = json_pack("{sss[]}", "p_run_id", s->run_id,
	    "p_results")) == NULL)
		return -1;
	s->outages++;
	for (;;) {
		struct dt_sb_result res;
		long long now = dt_now_ms();

		until = give_up_at(s, start);
		if (now >= until) {
			dt_error("Supabase still unavailable after %lld s (%s); "
			    "giving up", (now - start) / 1000, why);
			break;
		}
		wait = dt_http_backoff_ms(&pol, ++n, NULL);
		if (wait > until - now)
			wait = until - now;
		dt_warn("Supabase unavailable (%s); probing again in %lld ms, "
		    "giving up in %lld s", why, wait, (until - now + 999) / 1000);
		/* In slices, so that a stop meanwhile is seen. */
		while (wait > 0) {
			long long slice = wait < 250 ? wait : 250;
			struct timespec ts = {0, (long)slice * 1000000};

			nanosleep(&ts, NULL);
			wait -= slice;
			if (give_up_at(s, start) <= dt_now_ms())
				break;
		}
		if (give_up_at(s, start) <= dt_now_ms())
			continue;
		dt_supabase_call(s->sb, "POST", path, probe, NULL, 0, &res);
		if (res.kind != DT_SB_UNAVAILABLE && res.kind != DT_SB_TIMEOUT) {
			dt_info("Supabase answers again after %lld ms; sending "
			    "the batch again", dt_now_ms() - start);
			dt_sb_result_clear(&res);
			rc = 0;
			break;
		}
		snprintf(last, sizeof(last), "%s", res.message);
		why = last;
		dt_sb_result_clear(&res);
	}
	json_decref(probe);
	return rc;
}

/*
 * Gives up on batch record i: warns with why and more, makes the status
 * at least status and ends its line as not stored.
 */
static void
give_up_one(struct dt_store *s, size_t i, const char *why, const char *more,
    int status)
{
	const char *sid = s->sids.p + s->slot[i].sid;
	const char *q = s->slot[i].sid_is_str ? "\"" : "";

	/* A long id is quoted in part, cut between characters. */
	dt_warn("record %s%.*s%s: %s%s", q, (int)utf8_cut(sid, strlen(sid),
	    64), sid, q, why, more);
	dt_store_worse(s, status);
	dt_store_line_not_stored(s, i, why);
}

/*
 * Sends records [from, to) of the batch in one request.  On a 400 for
 * more than one record it sends them one by one, so one bad record does
 * not take its batch down with it.  Through an outage it waits and sends
 * them again (outage_wait()).  A request that still fails while the
 * probes get answers is this request's trouble, not an outage (a
 * statement timeout on a large batch, say): its records are sent one by
 * one, and a single one is given up without ending the run's storing.
 */
void
dt_store_send_range(struct dt_store *s, size_t from, size_t to)
{
	const char *path = s->reclaim ? "rpc/dt_reclaim" : "rpc/dt_settle";
	struct dt_sb_result res;
	char *req, why[1200];
	size_t i, n = 0;
	int answered = 0;       /* probes answered while this request failed */

	if (s->dead) {
		for (i = from; i < to; i++)
			dt_store_line_not_stored(s, i, s->dead_why);
		return;
	}
	if ((req = dt_store_request_body(s, from, to, &n)) == NULL) {
		memset(&res, 0, sizeof(res));
		res.kind = DT_SB_UNAVAILABLE;
		snprintf(res.message, sizeof(res.message), "out of memory");
	} else {
		for (;;) {
			dt_supabase_call_raw(s->sb, "POST", path, req, n, NULL,
			    1, &res);
			if ((res.kind != DT_SB_UNAVAILABLE &&
			    res.kind != DT_SB_TIMEOUT) || answered == 2 ||
			    outage_wait(s, path, res.message) < 0)
				break;
			answered++;
			dt_sb_result_clear(&res);
		}
	}
	free(req);
	s->batches++;
	if (res.kind == DT_SB_OK && json_is_array(res.body)) {
		dt_store_emit_outcomes(s, from, to, res.body);
	} else if (res.kind == DT_SB_REJECTED && to - from > 1) {
		dt_warn("a batch of %zu records was rejected (%s); sending "
		    "them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			dt_store_send_range(s, i, i + 1);
	} else if (answered == 2 && to - from > 1) {
		dt_warn("a batch of %zu records failed (%s) while Supabase "
		    "answers; sending them one by one", to - from, res.message);
		for (i = from; i < to; i++)
			dt_store_send_range(s, i, i + 1);
	} else if (answered == 2) {
		snprintf(why, sizeof(why), "Supabase answers, but not to this "
		    "record: %s", res.message);
		give_up_one(s, from, why, "; it stays leased and comes back "
		    "after the lease", dt_sb_exit(res.kind));
	} else if (res.kind == DT_SB_REJECTED) {
		snprintf(why, sizeof(why), "Supabase rejected it: %s",
		    res.message);
		give_up_one(s, from, why, "", DT_EXIT_DATAERR);
	} else {
		/* Unavailable, wrong key or table, or a bad reply: stop. */
		s->dead = 1;
		snprintf(s->dead_why, sizeof(s->dead_why), "Supabase %s: %s",
		    res.kind == DT_SB_CONFIG ? "refused the request" :
		    "unavailable", res.message);
		snprintf(s->message, sizeof(s->message), "%s", s->dead_why);
		dt_error("%s; the records not stored stay leased and come "
		    "back after the lease expires", s->dead_why);
		dt_store_worse(s, res.kind == DT_SB_BADREPLY ?
		    DT_EXIT_TEMPFAIL : dt_sb_exit(res.kind));
		for (i = from; i < to; i++)
			dt_store_line_not_stored(s, i, s->dead_why);
	}
	dt_sb_result_clear(&res);
}

/* --dry-run: each record's line says what would have been sent. */
void
dt_store_dry_run(struct dt_store *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		json_t *would = json_loadb(s->body.p + s->slot[i].item,
		    s->slot[i].item_len, JSON_ALLOW_NUL, NULL);
		json_t *st = json_pack("{sssssO}", "outcome", "dry_run",
		    "run_id", s->run_id, "would",
		    would != NULL ? would : json_null());
		char *text = st != NULL ? json_dumps(st, DT_LINE_FLAGS) : NULL;

		if (text != NULL)
			dt_store_line_end(s, i, text, strlen(text),
			    "unchanged");
		else
			dt_store_line_not_stored(s, i, "out of memory");
		free(text);
		json_decref(st);
		json_decref(would);
	}
}
