/*
 * batch.c: the batch being filled: each record's dt_settle element and status
 * line, written as it comes (store.h).
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

/*
 * Checks that rec can be stored: a usable id, and an "analysis", an
 * "error" or a "skip" object.  Returns 0, or -1 with *why set.
 */
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

/*
 * The source id of the row whose analysis rec takes (dt-fetch --reuse
 * wrote "same_text": {"as"} and a "skip" of reason same_text), or NULL.
 * Borrowed.
 */
static json_t *
same_text_as(json_t *rec)
{
	json_t *as = json_object_get(json_object_get(rec, "same_text"), "as");
	const char *reason = json_string_value(json_object_get(
	    json_object_get(rec, "skip"), "reason"));

	return json_is_string(as) && reason != NULL &&
	    strcmp(reason, "same_text") == 0 ? as : NULL;
}

/*
 * The dt_settle element of rec (storable), with the source id sid as a
 * string: {"id", then "error":{"kind","message"} (and "retryable" when
 * rec's error has it), or "analysis" with "model", "prompt_version",
 * the token counts out of "usage", "latency_ms", "cost_usd" and "reused"
 * where rec has them, or "same_text":{"as"} (with "final": true when
 * final) for a row that takes the analysis of another, or else
 * "skip":{"reason","message"}}.  Returns a new reference, or NULL when
 * out of memory.
 */
static json_t *
settle_item(json_t *rec, const char *sid, int final)
{
	json_t *error = json_object_get(rec, "error");
	json_t *skip = json_object_get(rec, "skip");
	json_t *item = json_object(), *o = NULL, *v;
	int rc = item == NULL ||
	    json_object_set_new(item, "id", json_string(sid));

	if (rc == 0 && !json_is_object(error) && (v = same_text_as(rec)) !=
	    NULL) {
		rc |= json_object_set_new(item, "same_text", o = json_pack(
		    "{sO}", "as", v));
		if (final)
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

/*
 * Adds rec (storable, without "text" and "row") to the batch as record
 * s->n: its source id, its dt_settle element and its status line so far
 * (the record without its closing brace).  Returns 0, or -1 when out of
 * memory (the batch is as before).
 */
int
dt_store_batch_add(struct dt_store *s, json_t *rec)
{
	struct dt_store_slot *sl = &s->slot[s->n];
	json_t *id = json_object_get(rec, "id"), *item;
	size_t body0 = s->body.len, lines0 = s->lines.len, sids0 = s->sids.len;
	char num[32];
	const char *sid = num;
	int rc = 0;

	sl->sid = s->sids.len;
	sl->sid_is_str = json_is_string(id);
	sl->reused = (json_is_object(json_object_get(rec, "analysis")) &&
	    json_is_object(json_object_get(rec, "reused"))) ||
	    (!json_is_object(json_object_get(rec, "error")) &&
	    same_text_as(rec) != NULL);
	if (sl->sid_is_str)
		sid = json_string_value(id);
	else
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(id));
	rc |= dt_buf_add(&s->sids, sid, strlen(sid) + 1);
	/* A following row's status line gets its row's analysis. */
	sl->follows = !json_is_object(json_object_get(rec, "error")) &&
	    same_text_as(rec) != NULL;
	sl->as = s->sids.len;
	if (sl->follows)
		rc |= dt_buf_add(&s->sids, json_string_value(same_text_as(rec)),
		    json_string_length(same_text_as(rec)) + 1);
	sl->line = s->lines.len;
	rc |= dt_buf_add(&s->lines, "{", 1);
	rc |= dt_buf_json(&s->lines, rec, DT_LINE_FLAGS | JSON_EMBED);
	sl->line_len = s->lines.len - sl->line;
	if (s->n > 0)
		rc |= dt_buf_add(&s->body, ",", 1);
	sl->item = s->body.len;
	if ((item = settle_item(rec, sid, s->final)) == NULL)
		rc = -1;
	else
		rc |= dt_buf_json(&s->body, item, DT_LINE_FLAGS);
	json_decref(item);
	sl->item_len = s->body.len - sl->item;
	if (rc != 0) {
		s->body.len = body0;
		s->lines.len = lines0;
		s->sids.len = sids0;
		return -1;
	}
	s->n++;
	return 0;
}

void
dt_store_batch_reset(struct dt_store *s)
{
	s->n = 0;
	s->body.len = 0;
	s->lines.len = 0;
	s->sids.len = 0;
	free(s->run_id);
	s->run_id = NULL;
	s->first_ms = 0;
}

/*
 * The request for records [from, to): {"p_run_id":...,"p_results":[...]}
 * around the slice of the body that holds their elements.  Returns a new
 * string (its length in *n), or NULL when out of memory.
 */
char *
dt_store_request_body(struct dt_store *s, size_t from, size_t to, size_t *n)
{
	json_t *run = json_string(s->run_id);
	char *head = run != NULL ? json_dumps(run, JSON_ENCODE_ANY) : NULL;
	size_t start = s->slot[from].item;
	size_t slice = s->slot[to - 1].item + s->slot[to - 1].item_len - start;
	char *req = NULL;
	int at;

	json_decref(run);
	if (head == NULL)
		return NULL;
	*n = sizeof("{\"p_run_id\":,\"p_results\":[]}") - 1 + strlen(head) +
	    slice;
	if ((req = malloc(*n + 1)) != NULL) {
		at = snprintf(req, *n + 1, "{\"p_run_id\":%s,\"p_results\":[",
		    head);
		memcpy(req + at, s->body.p + start, slice);
		memcpy(req + at + slice, "]}", 3);
	}
	free(head);
	return req;
}

void
dt_store_wait_keep(struct dt_store *s, size_t i)
{
	const struct dt_store_slot *sl = &s->slot[i];
	char *text = malloc(sl->line_len + 2);
	json_t *rec = NULL;

	/* The status line so far is the record without its closing brace. */
	if (text != NULL) {
		memcpy(text, s->lines.p + sl->line, sl->line_len);
		memcpy(text + sl->line_len, "}", 2);
		rec = json_loads(text, 0, NULL);
	}
	free(text);
	if (s->waiting == NULL)
		s->waiting = json_array();
	if (rec == NULL || json_array_append_new(s->waiting, rec) < 0) {
		dt_error("out of memory: record %s is not stored", s->sids.p +
		    sl->sid);
		dt_store_worse(s, DT_EXIT_TEMPFAIL);
		dt_store_line_not_stored(s, i, "out of memory");
	}
}

size_t
dt_store_wait_take(struct dt_store *s)
{
	size_t i = 0, moved = 0;
	json_t *rec;
	const char *run;

	while (i < json_array_size(s->waiting) &&
	    (long long)s->n < s->batch_size) {
		rec = json_array_get(s->waiting, i);
		run = json_string_value(json_object_get(rec, "run_id"));
		if (run == NULL)
			run = s->default_run;
		if (run == NULL || (s->run_id != NULL &&
		    strcmp(s->run_id, run) != 0)) {
			i++;
			continue;
		}
		if (s->run_id == NULL && (s->run_id = strdup(run)) == NULL)
			break;
		if (dt_store_batch_add(s, rec) < 0)
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
	json_t *as = same_text_as(rec), *analysis, *id;
	char num[32];
	const char *sid = num;

	if (s->wanted == NULL && (s->wanted = json_object()) == NULL)
		return;
	if (as != NULL && json_object_get(s->wanted,
	    json_string_value(as)) == NULL)
		json_object_set_new(s->wanted, json_string_value(as),
		    json_null());
	analysis = json_object_get(rec, "analysis");
	id = json_object_get(rec, "id");
	if (!json_is_object(analysis) || json_object_size(s->wanted) == 0)
		return;
	if (json_is_string(id))
		sid = json_string_value(id);
	else
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(id));
	if (json_is_null(json_object_get(s->wanted, sid)))
		json_object_set_new(s->wanted, sid, json_pack("{sOsOsO}",
		    "analysis", analysis, "model", json_object_get(rec,
		    "model") != NULL ? json_object_get(rec, "model") :
		    json_null(), "prompt_version", json_object_get(rec,
		    "prompt_version") != NULL ? json_object_get(rec,
		    "prompt_version") : json_null()));
}
