/*
 * record.c: ids and error records.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "record.h"

#define ID_MAX_BYTES 200

int
dt_record_id(json_t *rec, json_t **id, const char **why)
{
	json_t *v = json_object_get(rec, "id");

	*id = NULL;
	if (v == NULL) {
		*why = "missing id";
		return -1;
	}
	if (json_is_integer(v)) {
		*id = v;
		return 0;
	}
	if (json_is_string(v)) {
		size_t n = json_string_length(v);

		if (n == 0) {
			*why = "id is an empty string";
			return -1;
		}
		if (n > ID_MAX_BYTES) {
			*why = "id is longer than 200 bytes";
			return -1;
		}
		if (memchr(json_string_value(v), '\0', n) != NULL) {
			*why = "id contains a NUL character";
			return -1;
		}
		*id = v;
		return 0;
	}
	switch (json_typeof(v)) {
	case JSON_REAL:
		*why = "id must be an integer or a string, not a fraction";
		break;
	case JSON_NULL:
		*why = "id must be an integer or a string, not null";
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		*why = "id must be an integer or a string, not a boolean";
		break;
	case JSON_ARRAY:
		*why = "id must be an integer or a string, not an array";
		break;
	default:
		*why = "id must be an integer or a string, not an object";
		break;
	}
	return -1;
}

const char *
dt_record_id_str(json_t *id, char *buf, size_t len)
{
	if (json_is_integer(id))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(id));
	else if (json_is_string(id))
		snprintf(buf, len, "\"%s\"", json_string_value(id));
	else
		snprintf(buf, len, "?");
	return buf;
}

int
dt_record_set_error(json_t *rec, const char *kind, int retryable,
    const char *fmt, ...)
{
	va_list ap;
	char *msg, *clean;
	json_t *err;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	clean = dt_redact(msg);
	free(msg);
	if (clean == NULL)
		return -1;
	err = json_pack("{s:s, s:s, s:b}", "kind", kind, "message", clean,
	    "retryable", retryable);
	free(clean);
	if (err == NULL)
		return -1;
	return json_object_set_new(rec, "error", err);
}

json_t *
dt_record_bad_line(const char *where, const char *why, const char *excerpt)
{
	json_t *rec;

	rec = json_pack("{s:{s:s, s:s, s:b}, s:{s:s, s:s}}",
	    "error", "kind", "bad_record", "message", why, "retryable", 0,
	    "input", "where", where, "excerpt", excerpt ? excerpt : "");
	return rec;
}

json_t *
dt_record_stage(const char *stage, const char *run_id, int status,
    const char *message, json_t *counts, json_t *more, int interrupted)
{
	json_t *rec;

	rec = json_pack("{sssosisoso}", "stage", stage, "run_id",
	    run_id != NULL ? json_string(run_id) : json_null(), "status",
	    status, "message", message != NULL && *message != '\0' ?
	    json_string(message) : json_null(), "counts", counts);
	if (rec != NULL && ((more != NULL && json_object_update(rec,
	    more) < 0) || json_object_set_new(rec, "interrupted",
	    json_boolean(interrupted)) < 0)) {
		json_decref(rec);
		rec = NULL;
	}
	json_decref(more);
	return rec;
}
