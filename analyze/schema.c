/* schema.c: one walk checks a schema (no value) or validates a value. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schema.h"
#include "utf8.h"

/* The type names, in the order of Jansson's json_type (true, false). */
static const char *const types[] = {"object", "array", "string", "integer",
    "number", "boolean", "boolean", "null", NULL};

static const char *const bounds[] = {"minLength", "maxLength", "minItems",
    "maxItems", "minimum", "maximum", NULL};

static const char *const ignored[] = {"title", "description", "default",
    "examples", "$schema", "$id", "$comment", NULL};

static int walk(const json_t *s, const json_t *v, const char *path,
    char *err, size_t len);

/* Writes "path: message" into err, whole characters.  Returns -1. */
static __attribute__((format(printf, 4, 5))) int
fail(char *err, size_t len, const char *path, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_format(err, len, "%s: %s", path, msg);
	return -1;
}

/* Whether s is one of the words of the NULL-terminated list. */
static int
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

/* Whether v is of the type named t; a whole real is an integer too. */
static int
is_type(const json_t *v, const char *t)
{
	double d = json_number_value(v);

	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(v) || (json_is_real(v) && isfinite(d) &&
		    floor(d) == d);
	return strcmp(t, types[json_typeof(v)]) == 0;
}

/* "type" t: a name or a non-empty list of them; v of one of them. */
static int
walk_type(const json_t *t, const json_t *v, const char *path, char *err,
    size_t len)
{
	size_t i, n = json_is_array(t) ? json_array_size(t) : 1;
	const char *name = NULL;

	for (i = 0; i < n; i++) {
		name = json_string_value(json_is_array(t) ?
		    json_array_get(t, i) : t);
		if (name == NULL)
			break;
		if (v == NULL && !in_list(name, types))
			return fail(err, len, path, "unknown type \"%s\"",
			    name);
		if (v != NULL && is_type(v, name))
			return 0;
	}
	if (name == NULL)
		return fail(err, len, path,
		    "\"type\" must be a type name or a list of them");
	if (v == NULL)
		return 0;
	return json_is_string(t) ? fail(err, len, path, "expected %s, got %s",
	    name, types[json_typeof(v)]) : fail(err, len, path,
	    "%s is not one of the allowed types", types[json_typeof(v)]);
}

/* A bound k: a count (a whole number >= 0) or a number; v within it. */
static int
walk_bound(const char *k, const json_t *b, const json_t *v,
    const char *path, char *err, size_t len)
{
	int upper = strncmp(k, "max", 3) == 0;
	int number = strcmp(k + 3, "imum") == 0;
	long long lim = json_integer_value(b), n;
	double d = json_number_value(v), dlim = json_number_value(b);

	if (number && !json_is_number(b))
		return fail(err, len, path, "\"%s\" must be a number", k);
	if (!number && (!json_is_integer(b) || lim < 0))
		return fail(err, len, path,
		    "\"%s\" must be a whole number >= 0", k);
	if (number && json_is_number(v) && (upper ? d > dlim : d < dlim))
		return fail(err, len, path, upper ? "%g is more than %g" :
		    "%g is less than %g", d, dlim);
	if (strcmp(k + 3, "Length") == 0 && json_is_string(v))
		n = (long long)dt_utf8_len(json_string_value(v),
		    json_string_length(v));
	else if (strcmp(k + 3, "Items") == 0 && json_is_array(v))
		n = (long long)json_array_size(v);
	else
		return 0;
	if (upper ? n <= lim : n >= lim)
		return 0;
	return json_is_string(v) ? fail(err, len, path, "string of %lld "
	    "characters is %s than %lld", n, upper ? "longer" : "shorter",
	    lim) : fail(err, len, path, "%lld items are %s than %lld", n,
	    upper ? "more" : "fewer", lim);
}

/* The keyword k of a schema, of value kv; v against it. */
static int
walk_keyword(const char *k, const json_t *kv, const json_t *v,
    const char *path, char *err, size_t len)
{
	char sub[256];
	json_t *e;
	size_t i;

	if (strcmp(k, "type") == 0)
		return walk_type(kv, v, path, err, len);
	if (in_list(k, bounds))
		return walk_bound(k, kv, v, path, err, len);
	if (in_list(k, ignored))
		return 0;
	/* walk() walks the members of these two. */
	if (strcmp(k, "properties") == 0)
		return json_is_object(kv) ? 0 : fail(err, len, path,
		    "\"properties\" must be an object");
	if (strcmp(k, "additionalProperties") == 0) {
		snprintf(sub, sizeof(sub), "%s.%s", path, k);
		return v != NULL || json_is_boolean(kv) ? 0 : walk(kv, NULL,
		    sub, err, len);
	}
	if (strcmp(k, "required") == 0) {
		if (!json_is_array(kv))
			return fail(err, len, path,
			    "\"required\" must be a list of names");
		json_array_foreach(kv, i, e) {
			if (!json_is_string(e))
				return fail(err, len, path,
				    "\"required\" must be a list of names");
			if (json_is_object(v) && json_object_get(v,
			    json_string_value(e)) == NULL)
				return fail(err, len, path, "missing required "
				    "property \"%s\"", json_string_value(e));
		}
		return 0;
	}
	if (strcmp(k, "items") == 0) {
		snprintf(sub, sizeof(sub), "%s[]", path);
		if (v == NULL)
			return walk(kv, NULL, sub, err, len);
		json_array_foreach(v, i, e) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (walk(kv, e, sub, err, len) < 0)
				return -1;
		}
		return 0;
	}
	if (strcmp(k, "enum") == 0) {
		if (!json_is_array(kv) || json_array_size(kv) == 0)
			return fail(err, len, path,
			    "\"enum\" must be a non-empty list");
		json_array_foreach(kv, i, e)
			if (v == NULL || json_equal(e, (json_t *)v))
				return 0;
		return !json_is_string(v) ? fail(err, len, path,
		    "value is not one of the allowed values") : fail(err, len,
		    path, "\"%.60s\" is not one of the allowed values",
		    json_string_value(v));
	}
	return fail(err, len, path, "unsupported keyword \"%s\"", k);
}

/*
 * The keywords of s at path, then the schemas of "properties" (v NULL)
 * or v's members against them.
 */
static int
walk(const json_t *s, const json_t *v, const char *path, char *err,
    size_t len)
{
	json_t *addl = json_object_get(s, "additionalProperties"), *kv, *ps;
	json_t *props = json_object_get(s, "properties");
	const char *k;
	char sub[256];

	if (!json_is_object(s))
		return fail(err, len, path, "a schema must be an object");
	json_object_foreach((json_t *)s, k, kv)
		if (walk_keyword(k, kv, v, path, err, len) < 0)
			return -1;
	json_object_foreach(v != NULL ? (json_t *)v : props, k, kv) {
		ps = v != NULL ? json_object_get(props, k) : kv;
		if (ps == NULL && json_is_false(addl))
			return fail(err, len, path, "unexpected property "
			    "\"%.60s\"", k);
		if (ps == NULL && json_is_object(addl))
			ps = addl;
		utf8_format(sub, sizeof(sub), "%s.%.60s", path, k);
		if (ps != NULL && walk(ps, v != NULL ? kv : NULL, sub, err,
		    len) < 0)
			return -1;
	}
	return 0;
}

int
dt_schema_check(const json_t *schema, char *err, size_t errlen)
{
	return walk(schema, NULL, "$", err, errlen);
}

int
dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen)
{
	return walk(schema, value, "$", err, errlen);
}

size_t
dt_utf8_len(const char *s, size_t n)
{
	size_t i, cp = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			cp++;
	return cp;
}
