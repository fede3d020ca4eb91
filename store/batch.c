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

int
dt_store_storable(json_t *rec, const char **why)
{
	json_t *id;

	if (dt_record_id(rec, &id, why) < 0)
		return -1;
	if (!json_is_object(json_object_get(rec, "error")) &&
	    !json_is_object(json_object_get(rec, "analysis")) &&
	    !json_is_object(json_object_get(rec, "skip"))) {
		*why = "no \"analysis\", \"error\" or \"skip\" object";
		return -1;
	}
	return 0;
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

/* Sets o[key] to v when v is a string, else to the string dflt. */
static int
set_string(json_t *o, const char *key, json_t *v, const char *dflt)
{
	if (json_is_string(v))
		return json_object_set(o, key, v);
	return json_object_set_new(o, key, json_string(dflt));
}

/* Sets o[key] to src[key] when that is a count an integer column holds. */
static int
set_count(json_t *o, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 2147483647)
		return 0;
	return json_object_set(o, key, v);
}

/* Sets item's "analysis" and the fields dt_settle keeps beside it. */
static int
set_analysis(json_t *item, json_t *rec)
{
	json_t *usage = json_object_get(rec, "usage"), *v;
	int rc = 0;

	rc |= json_object_set(item, "analysis", json_object_get(rec,
	    "analysis"));
	if (json_is_string(v = json_object_get(rec, "model")))
		rc |= json_object_set(item, "model", v);
	if (json_is_string(v = json_object_get(rec, "prompt_version")))
		rc |= json_object_set(item, "prompt_version", v);
	rc |= set_count(item, usage, "prompt_tokens");
	rc |= set_count(item, usage, "completion_tokens");
	rc |= set_count(item, usage, "total_tokens");
	rc |= set_count(item, rec, "latency_ms");
	if (json_is_number(v = json_object_get(rec, "cost_usd")) ||
	    json_is_number(v = json_object_get(usage, "cost_usd")))
		rc |= json_object_set(item, "cost_usd", v);
	/* An analysis dt-fetch found stored for the same text. */
	if (json_is_string(v = json_object_get(json_object_get(rec, "reused"),
	    "from")))
		rc |= json_object_set_new(item, "reused", json_pack("{sO}",
		    "from", v));
	return rc;
}

json_t *
dt_store_settle_item(struct dt_store *s, json_t *rec)
{
	json_t *error = json_object_get(rec, "error");
	json_t *skip = json_object_get(rec, "skip");
	json_t *item = json_object(), *o = NULL, *v;
	char num[32];
	int rc = item == NULL || json_object_set_new(item, "id",
	    json_string(dt_store_sid(rec, num)));

	if (rc == 0 && (v = same_text_as(rec)) != NULL) {
		rc |= json_object_set_new(item, "same_text", o = json_pack(
		    "{sO}", "as", v));
		if (s->final)
			rc |= json_object_set_new(o, "final", json_true());
	} else if (rc == 0 && json_is_object(error)) {
		rc |= json_object_set_new(item, "error", o = json_object());
		rc |= set_string(o, "kind", json_object_get(error, "kind"),
		    "bad_record");
		rc |= set_string(o, "message", json_object_get(error,
		    "message"), "");
		/* dt_settle parks a record whose error is not retryable. */
		if (json_is_boolean(v = json_object_get(error, "retryable")))
			rc |= json_object_set(o, "retryable", v);
	} else if (rc == 0 && json_is_object(json_object_get(rec,
	    "analysis")))
		rc |= set_analysis(item, rec);
	else if (rc == 0) {
		/* Nothing to analyze. */
		rc |= json_object_set_new(item, "skip", o = json_object());
		rc |= set_string(o, "reason", json_object_get(skip, "reason"),
		    "no_text");
		rc |= set_string(o, "message", json_object_get(skip,
		    "message"), "");
	}
	if (rc != 0) {
		json_decref(item);
		return NULL;
	}
	return item;
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
