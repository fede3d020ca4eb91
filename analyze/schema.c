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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const types[] = {"object", "array", "string", "number",
    "integer", "boolean", "null"};

static const char *const ignored[] = {"title", "description", "default",
    "examples", "$schema", "$id", "$comment"};

static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes "path: message" into err, cut on a character.  Returns -1. */
static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "%s: ", path);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
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

/* Writes path plus a member name (up to 60 bytes of it) or an item. */
static void
sub_path(char *sub, size_t len, const char *path, const char *k, size_t i)
{
	if (k != NULL)
		snprintf(sub, len, "%s.%.*s", path,
		    (int)utf8_cut(k, strlen(k), 60), k);
	else
		snprintf(sub, len, "%s[%zu]", path, i);
	utf8_fix(sub);
}

static int
check_type(const json_t *t, const char *path, char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (json_is_string(t) && !in_list(json_string_value(t), types,
	    NELEM(types)))
		return fail(err, errlen, path, "unknown type \"%s\"",
		    json_string_value(t));
	if (json_is_string(t))
		return 0;
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

static int check(const json_t *s, const char *path, char *err, size_t errlen);

/* Checks one keyword k with value v of the schema at path. */
static int
check_keyword(const char *k, json_t *v, const char *path, char *err,
    size_t errlen)
{
	char sub[256];
	const char *pk;
	json_t *e;
	size_t i;

	if (strcmp(k, "type") == 0)
		return check_type(v, path, err, errlen);
	if (strcmp(k, "properties") == 0) {
		if (!json_is_object(v))
			return fail(err, errlen, path,
			    "\"properties\" must be an object");
		json_object_foreach(v, pk, e) {
			snprintf(sub, sizeof(sub), "%s.%s", path, pk);
			utf8_fix(sub);
			if (check(e, sub, err, errlen) < 0)
				return -1;
		}
		return 0;
	}
	if (strcmp(k, "required") == 0) {
		if (!json_is_array(v))
			return fail(err, errlen, path,
			    "\"required\" must be a list of names");
		json_array_foreach(v, i, e)
			if (!json_is_string(e))
				return fail(err, errlen, path,
				    "\"required\" must be a list of names");
		return 0;
	}
	if (strcmp(k, "additionalProperties") == 0) {
		snprintf(sub, sizeof(sub), "%s.additionalProperties", path);
		return json_is_boolean(v) ? 0 : check(v, sub, err, errlen);
	}
	if (strcmp(k, "items") == 0) {
		snprintf(sub, sizeof(sub), "%s[]", path);
		return check(v, sub, err, errlen);
	}
	if (strcmp(k, "minItems") == 0 || strcmp(k, "maxItems") == 0 ||
	    strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0)
		return json_is_integer(v) && json_integer_value(v) >= 0 ? 0 :
		    fail(err, errlen, path,
		    "\"%s\" must be a whole number >= 0", k);
	if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0)
		return json_is_number(v) ? 0 : fail(err, errlen, path,
		    "\"%s\" must be a number", k);
	if (strcmp(k, "enum") == 0)
		return json_is_array(v) && json_array_size(v) > 0 ? 0 :
		    fail(err, errlen, path,
		    "\"enum\" must be a non-empty list");
	return fail(err, errlen, path, "unsupported keyword \"%s\"", k);
}

static int
check(const json_t *s, const char *path, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(s))
		return fail(err, errlen, path, "a schema must be an object");
	json_object_foreach((json_t *)s, k, v)
		if (!in_list(k, ignored, NELEM(ignored)) &&
		    check_keyword(k, v, path, err, errlen) < 0)
			return -1;
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

/* The schema's name of v's type, in the order of Jansson's json_type. */
static const char *
type_name(const json_t *v)
{
	static const char *const names[] = {"object", "array", "string",
	    "integer", "number", "boolean", "boolean", "null"};

	return names[json_typeof(v)];
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
	return strcmp(t, type_name(v)) == 0;
}

/* The value's type against the schema's "type" t; a message on failure. */
static int
check_value_type(const json_t *t, const json_t *v, const char *path,
    char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (json_is_string(t))
		return is_type(v, json_string_value(t)) ? 0 : fail(err, errlen,
		    path, "expected %s, got %s", json_string_value(t),
		    type_name(v));
	json_array_foreach(t, i, e)
		if (is_type(v, json_string_value(e)))
			return 0;
	return fail(err, errlen, path, "%s is not one of the allowed types",
	    type_name(v));
}

/* minLength and maxLength in code points, minimum and maximum. */
static int
check_bounds(const json_t *s, const json_t *v, const char *path, char *err,
    size_t errlen)
{
	json_t *lo, *hi;
	long long n;
	double d;

	if (json_is_string(v)) {
		n = (long long)dt_utf8_len(json_string_value(v),
		    json_string_length(v));
		hi = json_object_get(s, "maxLength");
		lo = json_object_get(s, "minLength");
		if (hi != NULL && n > json_integer_value(hi))
			return fail(err, errlen, path, "string of %lld "
			    "characters is longer than %lld", n,
			    (long long)json_integer_value(hi));
		if (lo != NULL && n < json_integer_value(lo))
			return fail(err, errlen, path, "string of %lld "
			    "characters is shorter than %lld", n,
			    (long long)json_integer_value(lo));
	}
	if (json_is_number(v)) {
		d = json_number_value(v);
		lo = json_object_get(s, "minimum");
		hi = json_object_get(s, "maximum");
		if (lo != NULL && d < json_number_value(lo))
			return fail(err, errlen, path, "%g is less than %g", d,
			    json_number_value(lo));
		if (hi != NULL && d > json_number_value(hi))
			return fail(err, errlen, path, "%g is more than %g", d,
			    json_number_value(hi));
	}
	return 0;
}

static int validate(const json_t *s, const json_t *v, const char *path,
    char *err, size_t errlen);

/* An array's item counts and items. */
static int
check_items(const json_t *s, const json_t *v, const char *path, char *err,
    size_t errlen)
{
	json_t *lo = json_object_get(s, "minItems");
	json_t *hi = json_object_get(s, "maxItems");
	json_t *items = json_object_get(s, "items"), *e;
	long long n = (long long)json_array_size(v);
	char sub[256];
	size_t i;

	if (hi != NULL && n > json_integer_value(hi))
		return fail(err, errlen, path, "%lld items are more than %lld",
		    n, (long long)json_integer_value(hi));
	if (lo != NULL && n < json_integer_value(lo))
		return fail(err, errlen, path, "%lld items are fewer than "
		    "%lld", n, (long long)json_integer_value(lo));
	json_array_foreach(v, i, e) {
		sub_path(sub, sizeof(sub), path, NULL, i);
		if (items != NULL && validate(items, e, sub, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* An object's required properties, and each member against its schema. */
static int
check_members(const json_t *s, const json_t *v, const char *path,
    char *err, size_t errlen)
{
	json_t *addl = json_object_get(s, "additionalProperties"), *e, *ps;
	char sub[256];
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(s, "required"), i, e)
		if (json_object_get(v, json_string_value(e)) == NULL)
			return fail(err, errlen, path, "missing required "
			    "property \"%s\"", json_string_value(e));
	json_object_foreach((json_t *)v, k, e) {
		ps = json_object_get(json_object_get(s, "properties"), k);
		if (ps == NULL && json_is_false(addl))
			return fail(err, errlen, path, "unexpected property "
			    "\"%.*s\"", (int)utf8_cut(k, strlen(k), 60), k);
		if (ps == NULL && json_is_object(addl))
			ps = addl;
		sub_path(sub, sizeof(sub), path, k, 0);
		if (ps != NULL && validate(ps, e, sub, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Whether v is one of the values in the array enumv. */
static int
in_enum(const json_t *enumv, const json_t *v)
{
	size_t i;
	json_t *e;

	json_array_foreach(enumv, i, e)
		if (json_equal(e, (json_t *)v))
			return 1;
	return 0;
}

static int
validate(const json_t *s, const json_t *v, const char *path, char *err,
    size_t errlen)
{
	json_t *t = json_object_get(s, "type");
	json_t *enumv = json_object_get(s, "enum");

	if (t != NULL && check_value_type(t, v, path, err, errlen) < 0)
		return -1;
	if (enumv != NULL && !in_enum(enumv, v))
		return json_is_string(v) ? fail(err, errlen, path,
		    "\"%.*s\" is not one of the allowed values",
		    (int)utf8_cut(json_string_value(v), json_string_length(v),
		    60), json_string_value(v)) : fail(err, errlen, path,
		    "value is not one of the allowed values");
	if (check_bounds(s, v, path, err, errlen) < 0)
		return -1;
	if (json_is_array(v))
		return check_items(s, v, path, err, errlen);
	if (json_is_object(v))
		return check_members(s, v, path, err, errlen);
	return 0;
}

int
dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen)
{
	return validate(schema, value, "$", err, errlen);
}
