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
#define ID_TYPE "id must be an integer or a string, not "

int
dt_record_id(json_t *rec, json_t **id, const char **why)
{
	static const char *const not[] = {
		[JSON_OBJECT] = ID_TYPE "an object",
		[JSON_ARRAY] = ID_TYPE "an array",
		[JSON_REAL] = ID_TYPE "a fraction",
		[JSON_TRUE] = ID_TYPE "a boolean",
		[JSON_FALSE] = ID_TYPE "a boolean",
		[JSON_NULL] = ID_TYPE "null",
	};
	json_t *v = json_object_get(rec, "id");
	size_t n = json_string_length(v);

	*id = NULL;
	if (v == NULL)
		*why = "missing id";
	else if (json_is_integer(v))
		*id = v;
	else if (!json_is_string(v))
		*why = not[json_typeof(v)];
	else if (n == 0)
		*why = "id is an empty string";
	else if (n > ID_MAX_BYTES)
		*why = "id is longer than 200 bytes";
	else if (memchr(json_string_value(v), '\0', n) != NULL)
		*why = "id contains a NUL character";
	else
		*id = v;
	return *id != NULL ? 0 : -1;
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
	char *msg = NULL, *clean = NULL;
	json_t *err = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg != NULL && (clean = dt_redact(msg)) != NULL)
		err = json_pack("{s:s, s:s, s:b}", "kind", kind, "message",
		    clean, "retryable", retryable);
	free(msg);
	free(clean);
	return err != NULL ? json_object_set_new(rec, "error", err) : -1;
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
