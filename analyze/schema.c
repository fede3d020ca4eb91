/*
 * schema.c: local validation of the model's output against the analysis
 * schema.  See schema.h for the keywords.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"
#include "utf8.h"

#define PATH_MAX_LEN 256

static const char *const types[] = {"object", "array", "string", "number",
    "integer", "boolean", "null"};

static const char *const ignored[] = {"title", "description", "default",
    "examples", "$schema", "$id", "$comment"};

static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	/* The buffer's size may have cut the message inside a character. */
	utf8_fix(err);
	return -1;
}

static int
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
is_count(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int check(const json_t *s, const char *path, char *err, size_t errlen);

static int
check_type(const json_t *t, const char *path, char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (json_is_string(t)) {
		if (!in_list(json_string_value(t), types, NELEM(types)))
			return fail(err, errlen, path, "unknown type \"%s\"",
			    json_string_value(t));
		return 0;
	}
	if (!json_is_array(t) || json_array_size(t) == 0)
		return fail(err, errlen, path,
		    "\"type\" must be a type name or a list of them");
	json_array_foreach(t, i, e) {
		if (!json_is_string(e))
			return fail(err, errlen, path,
			    "\"type\" must be a type name or a list of them");
		if (check_type(e, path, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int
check(const json_t *s, const char *path, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	char sub[PATH_MAX_LEN];

	if (!json_is_object(s))
		return fail(err, errlen, path, "a schema must be an object");
	json_object_foreach((json_t *)s, k, v) {
		if (in_list(k, ignored, NELEM(ignored)))
			continue;
		if (strcmp(k, "type") == 0) {
			if (check_type(v, path, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "properties") == 0) {
			const char *pk;
			json_t *pv;

			if (!json_is_object(v))
				return fail(err, errlen, path,
				    "\"properties\" must be an object");
			json_object_foreach(v, pk, pv) {
				snprintf(sub, sizeof(sub), "%s.%s", path, pk);
				utf8_fix(sub);
				if (check(pv, sub, err, errlen) < 0)
					return -1;
			}
		} else if (strcmp(k, "required") == 0) {
			size_t i;
			json_t *e;

			if (!json_is_array(v))
				return fail(err, errlen, path,
				    "\"required\" must be a list of names");
			json_array_foreach(v, i, e)
				if (!json_is_string(e))
					return fail(err, errlen, path,
					    "\"required\" must be a list of "
					    "names");
		} else if (strcmp(k, "additionalProperties") == 0) {
			if (json_is_boolean(v))
				continue;
			snprintf(sub, sizeof(sub), "%s.additionalProperties",
			    path);
			if (check(v, sub, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "items") == 0) {
			snprintf(sub, sizeof(sub), "%s[]", path);
			if (check(v, sub, err, errlen) < 0)
				return -1;
		} else if (strcmp(k, "minItems") == 0 ||
		    strcmp(k, "maxItems") == 0 ||
		    strcmp(k, "minLength") == 0 ||
		    strcmp(k, "maxLength") == 0) {
			if (!is_count(v))
				return fail(err, errlen, path,
				    "\"%s\" must be a whole number >= 0", k);
		} else if (strcmp(k, "minimum") == 0 ||
		    strcmp(k, "maximum") == 0) {
			if (!json_is_number(v))
				return fail(err, errlen, path,
				    "\"%s\" must be a number", k);
		} else if (strcmp(k, "enum") == 0) {
			if (!json_is_array(v) || json_array_size(v) == 0)
				return fail(err, errlen, path,
				    "\"enum\" must be a non-empty list");
		} else
			return fail(err, errlen, path,
			    "unsupported keyword \"%s\"", k);
	}
	return 0;
}

int
dt_schema_check(const json_t *schema, char *err, size_t errlen)
{
	return check(schema, "$", err, errlen);
}

size_t
dt_utf8_len(const char *s, size_t n)
{
	size_t i, cp = 0;

	/* Counts every byte that does not continue a sequence. */
	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			cp++;
	return cp;
}

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static int
type_matches(const char *t, const json_t *v)
{
	if (strcmp(t, "object") == 0)
		return json_is_object(v);
	if (strcmp(t, "array") == 0)
		return json_is_array(v);
	if (strcmp(t, "string") == 0)
		return json_is_string(v);
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "integer") == 0) {
		double d;

		if (json_is_integer(v))
			return 1;
		if (!json_is_real(v))
			return 0;
		d = json_real_value(v);
		return isfinite(d) && floor(d) == d;
	}
	if (strcmp(t, "boolean") == 0)
		return json_is_boolean(v);
	return json_is_null(v);
}

/*
 * Where a value sits, as a chain up to the root.  The path string is
 * rendered only when a check fails: building it for every value took a
 * tenth of the time of a whole record.
 */
struct where {
	const struct where *up;
	const char *key;        /* property name, or NULL for an item */
	size_t idx;
};

static size_t
render(const struct where *w, char *buf, size_t len)
{
	size_t o;
	int n;

	if (w == NULL)
		return (size_t)snprintf(buf, len, "$") < len ? 1 : 0;
	o = render(w->up, buf, len);
	if (o >= len)
		return o;
	if (w->key != NULL)
		n = snprintf(buf + o, len - o, ".%.*s",
		    (int)utf8_cut(w->key, strlen(w->key), 60), w->key);
	else
		n = snprintf(buf + o, len - o, "[%zu]", w->idx);
	return n > 0 ? o + (size_t)n : o;
}

static int
vfail(char *err, size_t errlen, const struct where *w, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
vfail(char *err, size_t errlen, const struct where *w, const char *fmt, ...)
{
	char path[PATH_MAX_LEN];
	va_list ap;
	int n;

	render(w, path, sizeof(path));
	n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	/* The buffer's size may have cut the message inside a character. */
	utf8_fix(err);
	return -1;
}

static int
validate(const json_t *s, const json_t *v, const struct where *path,
    char *err, size_t errlen)
{
	json_t *t, *kw;

	if ((t = json_object_get(s, "type")) != NULL) {
		int ok = 0;

		if (json_is_string(t))
			ok = type_matches(json_string_value(t), v);
		else {
			size_t i;
			json_t *e;

			json_array_foreach(t, i, e)
				if (type_matches(json_string_value(e), v))
					ok = 1;
		}
		if (!ok) {
			if (json_is_string(t))
				return vfail(err, errlen, path,
				    "expected %s, got %s", json_string_value(t),
				    json_type_name(v));
			return vfail(err, errlen, path,
			    "%s is not one of the allowed types",
			    json_type_name(v));
		}
	}
	if ((kw = json_object_get(s, "enum")) != NULL) {
		size_t i;
		json_t *e;
		int found = 0;

		json_array_foreach(kw, i, e)
			if (json_equal(e, (json_t *)v))
				found = 1;
		if (!found) {
			if (json_is_string(v))
				return vfail(err, errlen, path,
				    "\"%.*s\" is not one of the allowed values",
				    (int)utf8_cut(json_string_value(v),
				    json_string_length(v), 60),
				    json_string_value(v));
			return vfail(err, errlen, path,
			    "value is not one of the allowed values");
		}
	}
	if (json_is_string(v)) {
		size_t n = dt_utf8_len(json_string_value(v),
		    json_string_length(v));

		if ((kw = json_object_get(s, "maxLength")) != NULL &&
		    n > (size_t)json_integer_value(kw))
			return vfail(err, errlen, path,
			    "string of %zu characters is longer than %lld", n,
			    (long long)json_integer_value(kw));
		if ((kw = json_object_get(s, "minLength")) != NULL &&
		    n < (size_t)json_integer_value(kw))
			return vfail(err, errlen, path,
			    "string of %zu characters is shorter than %lld", n,
			    (long long)json_integer_value(kw));
	}
	if (json_is_number(v)) {
		double d = json_number_value(v);

		if ((kw = json_object_get(s, "minimum")) != NULL &&
		    d < json_number_value(kw))
			return vfail(err, errlen, path, "%g is less than %g", d,
			    json_number_value(kw));
		if ((kw = json_object_get(s, "maximum")) != NULL &&
		    d > json_number_value(kw))
			return vfail(err, errlen, path, "%g is more than %g", d,
			    json_number_value(kw));
	}
	if (json_is_array(v)) {
		size_t i, n = json_array_size(v);
		json_t *e;

		if ((kw = json_object_get(s, "maxItems")) != NULL &&
		    n > (size_t)json_integer_value(kw))
			return vfail(err, errlen, path,
			    "%zu items are more than %lld", n,
			    (long long)json_integer_value(kw));
		if ((kw = json_object_get(s, "minItems")) != NULL &&
		    n < (size_t)json_integer_value(kw))
			return vfail(err, errlen, path,
			    "%zu items are fewer than %lld", n,
			    (long long)json_integer_value(kw));
		if ((kw = json_object_get(s, "items")) != NULL)
			json_array_foreach(v, i, e) {
				struct where sub = {path, NULL, i};

				if (validate(kw, e, &sub, err, errlen) < 0)
					return -1;
			}
	}
	if (json_is_object(v)) {
		json_t *props = json_object_get(s, "properties");
		json_t *addl = json_object_get(s, "additionalProperties");
		const char *k;
		json_t *e;
		size_t i;

		if ((kw = json_object_get(s, "required")) != NULL)
			json_array_foreach(kw, i, e)
				if (json_object_get(v, json_string_value(e)) ==
				    NULL)
					return vfail(err, errlen, path,
					    "missing required property \"%s\"",
					    json_string_value(e));
		json_object_foreach((json_t *)v, k, e) {
			json_t *ps = props ? json_object_get(props, k) : NULL;
			struct where sub = {path, k, 0};

			if (ps != NULL) {
				if (validate(ps, e, &sub, err, errlen) < 0)
					return -1;
			} else if (json_is_false(addl)) {
				return vfail(err, errlen, path,
				    "unexpected property \"%.*s\"",
				    (int)utf8_cut(k, strlen(k), 60), k);
			} else if (json_is_object(addl)) {
				if (validate(addl, e, &sub, err, errlen) < 0)
					return -1;
			}
		}
	}
	return 0;
}

int
dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen)
{
	return validate(schema, value, NULL, err, errlen);
}
