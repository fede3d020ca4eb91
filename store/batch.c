/*
 * batch.c: the records of a batch: their dt_settle elements, the records
 * that wait for another row's analysis, and their status lines (store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "record.h"

#include "store.h"

void
dt_store_worse(struct dt_store *s, int status)
{
	s->status = dt_exit_worse(s->status, status);
}

void
dt_store_emit(struct dt_store *s, json_t *rec)
{
	if (dt_emit(rec) < 0)
		dt_store_worse(s, dt_out_status() != 0 ? dt_out_status() :
		    DT_EXIT_IOERR);
}

/*
 * The source id of the row whose analysis rec takes (dt-fetch --reuse
 * wrote "same_text": {"as"} and a "skip" of reason same_text), or NULL
 * (also for a record with an error).  Borrowed.
 */
static json_t *
same_text_as(json_t *rec)
{
	json_t *as = json_object_get(json_object_get(rec, "same_text"), "as");
	const char *reason = json_string_value(json_object_get(
	    json_object_get(rec, "skip"), "reason"));

	if (json_is_object(json_object_get(rec, "error")) ||
	    !json_is_string(as) || reason == NULL ||
	    strcmp(reason, "same_text") != 0)
		return NULL;
	return as;
}

void
dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status)
{
	json_t *as = same_text_as(rec), *w;

	if (strcmp(status, "stored") == 0) {
		s->stored++;
		if (as != NULL || (json_is_object(json_object_get(rec,
		    "analysis")) && json_is_object(json_object_get(rec,
		    "reused"))))
			s->reused++;
		if (as != NULL && json_is_object(w = json_object_get(s->wanted,
		    json_string_value(as))))
			json_object_update(rec, w);
	} else if (strcmp(status, "skipped") == 0)
		s->skipped++;
	else if (strcmp(status, "unchanged") == 0)
		s->unchanged++;
	else if (strcmp(status, "released") == 0)
		s->released++;
	else
		s->failed++;
	/* null when store could not be made (out of memory). */
	json_object_set_new(rec, "store", store != NULL ? store : json_null());
	json_object_set_new(rec, "status", json_string(status));
	dt_store_emit(s, rec);
}

void
dt_store_not_stored(struct dt_store *s, json_t *rec, const char *why)
{
	s->not_stored++;
	dt_store_emit_status(s, rec, json_pack("{ssss}", "outcome",
	    "not_stored", "message", why), "failed");
}

const char *
dt_store_sid(json_t *rec, char buf[32])
{
	json_t *id = json_object_get(rec, "id");

	if (json_is_string(id))
		return json_string_value(id);
	snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
	return buf;
}

/* v's text when it is a string, else dflt. */
static const char *
text_or(json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* src[key] when it is a count an integer column holds, else NULL. */
static json_t *
count(json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 2147483647 ? v : NULL;
}

/* rec's analysis and the fields dt_settle keeps beside it. */
static json_t *
analysis_item(json_t *rec, const char *sid)
{
	json_t *usage = json_object_get(rec, "usage");
	json_t *model = json_object_get(rec, "model");
	json_t *version = json_object_get(rec, "prompt_version");
	json_t *cost = json_object_get(rec, "cost_usd");
	json_t *from = json_object_get(json_object_get(rec, "reused"), "from");

	if (!json_is_number(cost))
		cost = json_object_get(usage, "cost_usd");
	/* "O*" leaves out a member whose value is NULL. */
	return json_pack("{sssOsO*sO*sO*sO*sO*sO*sO*so*}", "id", sid,
	    "analysis", json_object_get(rec, "analysis"),
	    "model", json_is_string(model) ? model : NULL,
	    "prompt_version", json_is_string(version) ? version : NULL,
	    "prompt_tokens", count(usage, "prompt_tokens"),
	    "completion_tokens", count(usage, "completion_tokens"),
	    "total_tokens", count(usage, "total_tokens"),
	    "latency_ms", count(rec, "latency_ms"),
	    "cost_usd", json_is_number(cost) ? cost : NULL,
	    "reused", json_is_string(from) ? json_pack("{sO}", "from", from) :
	    NULL);
}

json_t *
dt_store_settle_item(struct dt_store *s, json_t *rec)
{
	json_t *error = json_object_get(rec, "error");
	json_t *skip = json_object_get(rec, "skip"), *as = same_text_as(rec);
	json_t *retryable = json_object_get(error, "retryable");
	char num[32];
	const char *sid = dt_store_sid(rec, num);

	if (as != NULL)
		return json_pack("{sss{sOso*}}", "id", sid, "same_text", "as",
		    as, "final", s->final ? json_true() : NULL);
	/* dt_settle parks a record whose error is not retryable. */
	if (json_is_object(error))
		return json_pack("{sss{sssssO*}}", "id", sid, "error", "kind",
		    text_or(json_object_get(error, "kind"), "bad_record"),
		    "message", text_or(json_object_get(error, "message"), ""),
		    "retryable", json_is_boolean(retryable) ? retryable :
		    NULL);
	if (json_is_object(json_object_get(rec, "analysis")))
		return analysis_item(rec, sid);
	/* Nothing to analyze. */
	return json_pack("{sss{ssss}}", "id", sid, "skip", "reason",
	    text_or(json_object_get(skip, "reason"), "no_text"), "message",
	    text_or(json_object_get(skip, "message"), ""));
}

size_t
dt_store_wait_take(struct dt_store *s)
{
	size_t i = 0, moved = 0;
	json_t *rec;
	const char *run;

	while (i < json_array_size(s->waiting) &&
	    (long long)json_array_size(s->batch) < s->batch_size) {
		rec = json_array_get(s->waiting, i);
		run = json_string_value(json_object_get(rec, "run_id"));
		if (run == NULL)
			run = s->default_run;
		if (run == NULL || (s->run_id != NULL &&
		    strcmp(s->run_id, run) != 0)) {
			i++;
			continue;
		}
		if ((s->run_id == NULL && (s->run_id = strdup(run)) == NULL) ||
		    json_array_append(s->batch, rec) < 0)
			break;
		json_array_remove(s->waiting, i);
		moved++;
	}
	/* The row it waits for gets a moment to be analysed and stored. */
	if (moved > 0 && s->first_ms == 0)
		s->first_ms = dt_now_ms() + (s->max_delay < 200 ?
		    200 - s->max_delay : 0);
	return moved;
}

void
dt_store_note_analysis(struct dt_store *s, json_t *rec)
{
	json_t *as = same_text_as(rec), *analysis, *model, *version;
	char num[32];
	const char *sid;

	if (s->wanted == NULL && (s->wanted = json_object()) == NULL)
		return;
	if (as != NULL && json_object_get(s->wanted,
	    json_string_value(as)) == NULL)
		json_object_set_new(s->wanted, json_string_value(as),
		    json_null());
	analysis = json_object_get(rec, "analysis");
	sid = dt_store_sid(rec, num);
	if (!json_is_object(analysis) ||
	    !json_is_null(json_object_get(s->wanted, sid)))
		return;
	model = json_object_get(rec, "model");
	version = json_object_get(rec, "prompt_version");
	json_object_set_new(s->wanted, sid, json_pack("{sOsOsO}", "analysis",
	    analysis, "model", model != NULL ? model : json_null(),
	    "prompt_version", version != NULL ? version : json_null()));
}
