/*
 * reuse.c: dt-fetch --reuse (reuse.h).
 */
#include <string.h>

#include <jansson.h>

#include "log.h"

#include "reuse.h"

int
dt_fetch_reuse_check(const char *what, const char *version)
{
	size_t len = strlen(version);

	if (len == 0 || len > 64 || strspn(version, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != len) {
		dt_error("%s: '%.64s' is not a prompt version (1 to 64 letters, "
		    "digits, '-', '_' or '.', as dt-analyze --prompt-version "
		    "prints it)", what, version);
		return -1;
	}
	return 0;
}

/* rec takes the stored analysis r of its text.  Returns 0 or -1. */
static int
take_analysis(json_t *rec, json_t *r)
{
	json_t *model = json_object_get(r, "model");

	/* Nothing was spent on it: the usage says so, and sums stay right. */
	return json_object_set(rec, "analysis", json_object_get(r,
	    "analysis")) < 0 ||
	    json_object_set(rec, "model", json_is_string(model) ? model :
	    json_null()) < 0 ||
	    json_object_set(rec, "prompt_version", json_object_get(r,
	    "prompt_version")) < 0 ||
	    json_object_set_new(rec, "usage", json_pack("{sisisisi}",
	    "prompt_tokens", 0, "completion_tokens", 0, "total_tokens", 0,
	    "cost_usd", 0)) < 0 ||
	    json_object_set_new(rec, "tries", json_integer(0)) < 0 ||
	    json_object_set_new(rec, "reused", json_pack("{sO}", "from",
	    json_object_get(r, "from"))) < 0 ? -1 : 0;
}

int
dt_fetch_reuse_record(json_t *rec, json_t *row)
{
	json_t *r = json_object_get(row, "reused"), *as;

	if (json_is_object(json_object_get(r, "analysis")) &&
	    json_is_string(json_object_get(r, "from")) &&
	    json_is_string(json_object_get(r, "prompt_version")))
		return take_analysis(rec, r) < 0 ? -1 : DT_FETCH_REUSED;
	if (!json_is_string(as = json_object_get(r, "same_text_as")))
		return DT_FETCH_ANALYSE;
	if (json_object_set_new(rec, "same_text", json_pack("{sO}", "as",
	    as)) < 0 || json_object_set_new(rec, "skip", json_pack("{ssss+}",
	    "reason", "same_text", "message", "takes the analysis of the row "
	    "with the same text, ", json_string_value(as))) < 0)
		return -1;
	return DT_FETCH_SAME_TEXT;
}
