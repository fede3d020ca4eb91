/*
 * schema.c: local validation of the model's output against the analysis
 * schema.  See schema.h for the keywords.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "utf8.h"

#define PATH_MAX_LEN 256

static const char *const types[] = {"object", "array", "string", "number",
    "integer", "boolean", "null"};

static const char *const ignored[] = {"title", "description", "default",
    "examples", "$schema", "$id", "$comment"};

/* Writes "path: message" into err, cut on a character.  Returns -1. */
static int
vpfail(char *err, size_t errlen, const char *path, const char *fmt,
    va_list ap)
{
	int n;

	n = snprintf(err, errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	/* The buffer's size may have cut the message inside a character. */
	utf8_fix(err);
	return -1;
}

static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vpfail(err, errlen, path, fmt, ap);
	va_end(ap);
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

/*
 * Where a value sits, as a chain up to the root.  The path string is
 * rendered only when a check fails.
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

	render(w, path, sizeof(path));
	va_start(ap, fmt);
	(void)vpfail(err, errlen, path, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * A schema compiled for validation: what each keyword says, looked up
 * once, not in the schema's objects for every value.
 */
enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16,
    T_BOOLEAN = 32, T_NULL = 64 };

struct prop {
	const char *key;
	struct dt_schema *node;
};

struct dt_schema {
	unsigned types;         /* T_* allowed; 0: "type" absent */
	const char *type1;      /* the name when "type" is one name */
	const json_t *enumv;    /* borrowed from the schema */
	long long min_len, max_len, min_items, max_items; /* -1: absent */
	int has_min, has_max;
	double min, max;
	struct dt_schema *items;
	struct prop *props;
	size_t nprops;
	int has_props;
	const json_t *required;
	int addl;               /* 0 absent or true, 1 false, 2 a schema */
	struct dt_schema *addl_node;
};

static unsigned
type_bit(const char *t)
{
	size_t i;

	for (i = 0; i < NELEM(types); i++)
		if (strcmp(t, types[i]) == 0)
			return 1u << i;
	return 0;
}

static long long
count_of(const json_t *s, const char *k)
{
	json_t *v = json_object_get(s, k);

	return v != NULL ? (long long)json_integer_value(v) : -1;
}

struct dt_schema *
dt_schema_compile(const json_t *s)
{
	struct dt_schema *c;
	json_t *t, *v;
	const char *k;
	size_t i;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((t = json_object_get(s, "type")) != NULL) {
		if (json_is_string(t)) {
			c->type1 = json_string_value(t);
			c->types = type_bit(c->type1);
		} else
			json_array_foreach(t, i, v)
				c->types |= type_bit(json_string_value(v));
	}
	c->enumv = json_object_get(s, "enum");
	c->min_len = count_of(s, "minLength");
	c->max_len = count_of(s, "maxLength");
	c->min_items = count_of(s, "minItems");
	c->max_items = count_of(s, "maxItems");
	if ((v = json_object_get(s, "minimum")) != NULL) {
		c->has_min = 1;
		c->min = json_number_value(v);
	}
	if ((v = json_object_get(s, "maximum")) != NULL) {
		c->has_max = 1;
		c->max = json_number_value(v);
	}
	c->required = json_object_get(s, "required");
	if ((v = json_object_get(s, "items")) != NULL &&
	    (c->items = dt_schema_compile(v)) == NULL)
		goto fail;
	if ((t = json_object_get(s, "properties")) != NULL) {
		c->has_props = 1;
		if (json_object_size(t) > 0 && (c->props = calloc(
		    json_object_size(t), sizeof(*c->props))) == NULL)
			goto fail;
		json_object_foreach(t, k, v) {
			c->props[c->nprops].key = k;
			if ((c->props[c->nprops].node = dt_schema_compile(v)) ==
			    NULL)
				goto fail;
			c->nprops++;
		}
	}
	if ((v = json_object_get(s, "additionalProperties")) != NULL) {
		if (json_is_false(v))
			c->addl = 1;
		else if (json_is_object(v)) {
			c->addl = 2;
			if ((c->addl_node = dt_schema_compile(v)) == NULL)
				goto fail;
		}
	}
	return c;
fail:
	dt_schema_free(c);
	return NULL;
}

void
dt_schema_free(struct dt_schema *c)
{
	size_t i;

	if (c == NULL)
		return;
	dt_schema_free(c->items);
	dt_schema_free(c->addl_node);
	for (i = 0; i < c->nprops; i++)
		dt_schema_free(c->props[i].node);
	free(c->props);
	free(c);
}

static unsigned
value_bits(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return T_OBJECT;
	case JSON_ARRAY:
		return T_ARRAY;
	case JSON_STRING:
		return T_STRING;
	case JSON_INTEGER:
		return T_NUMBER | T_INTEGER;
	case JSON_REAL: {
		double d = json_real_value(v);

		/* A whole real is an integer too. */
		return isfinite(d) && floor(d) == d ? T_NUMBER | T_INTEGER :
		    T_NUMBER;
	}
	case JSON_TRUE:
	case JSON_FALSE:
		return T_BOOLEAN;
	default:
		return T_NULL;
	}
}

static const struct dt_schema *
prop_node(const struct dt_schema *c, const char *k)
{
	size_t i;

	for (i = 0; i < c->nprops; i++)
		if (strcmp(c->props[i].key, k) == 0)
			return c->props[i].node;
	return NULL;
}

static int validate(const struct dt_schema *c, const json_t *v,
    const struct where *path, char *err, size_t errlen);

/* Validates e, item i or member k of the value at path, against node. */
static int
validate_child(const struct dt_schema *node, const json_t *e,
    const struct where *path, const char *k, size_t i, char *err,
    size_t errlen)
{
	struct where sub = {path, k, i};

	return validate(node, e, &sub, err, errlen);
}

/* An object's required properties, and each member against its schema. */
static int
validate_members(const struct dt_schema *c, const json_t *v,
    const struct where *path, char *err, size_t errlen)
{
	const struct dt_schema *ps;
	const char *k;
	json_t *e;
	size_t i;

	if (c->required != NULL)
		json_array_foreach(c->required, i, e)
			if (json_object_get(v, json_string_value(e)) == NULL)
				return vfail(err, errlen, path,
				    "missing required property \"%s\"",
				    json_string_value(e));
	json_object_foreach((json_t *)v, k, e) {
		if ((ps = prop_node(c, k)) == NULL && c->addl == 1)
			return vfail(err, errlen, path,
			    "unexpected property \"%.*s\"",
			    (int)utf8_cut(k, strlen(k), 60), k);
		if (ps == NULL && c->addl == 2)
			ps = c->addl_node;
		if (ps != NULL && validate_child(ps, e, path, k, 0, err,
		    errlen) < 0)
			return -1;
	}
	return 0;
}

/* Returns 1 when v is one of the values in the array enumv. */
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
validate(const struct dt_schema *c, const json_t *v,
    const struct where *path, char *err, size_t errlen)
{
	if (c->types != 0 || c->type1 != NULL) {
		if ((value_bits(v) & c->types) == 0) {
			if (c->type1 != NULL)
				return vfail(err, errlen, path,
				    "expected %s, got %s", c->type1,
				    json_type_name(v));
			return vfail(err, errlen, path,
			    "%s is not one of the allowed types",
			    json_type_name(v));
		}
	}
	if (c->enumv != NULL && !in_enum(c->enumv, v)) {
		if (json_is_string(v))
			return vfail(err, errlen, path,
			    "\"%.*s\" is not one of the allowed values",
			    (int)utf8_cut(json_string_value(v),
			    json_string_length(v), 60), json_string_value(v));
		return vfail(err, errlen, path,
		    "value is not one of the allowed values");
	}
	if (json_is_string(v) && (c->max_len >= 0 || c->min_len >= 0)) {
		size_t n = dt_utf8_len(json_string_value(v),
		    json_string_length(v));

		if (c->max_len >= 0 && n > (size_t)c->max_len)
			return vfail(err, errlen, path,
			    "string of %zu characters is longer than %lld", n,
			    c->max_len);
		if (c->min_len >= 0 && n < (size_t)c->min_len)
			return vfail(err, errlen, path,
			    "string of %zu characters is shorter than %lld", n,
			    c->min_len);
	}
	if (json_is_number(v)) {
		double d = json_number_value(v);

		if (c->has_min && d < c->min)
			return vfail(err, errlen, path, "%g is less than %g", d,
			    c->min);
		if (c->has_max && d > c->max)
			return vfail(err, errlen, path, "%g is more than %g", d,
			    c->max);
	}
	if (json_is_array(v)) {
		size_t i, n = json_array_size(v);
		json_t *e;

		if (c->max_items >= 0 && n > (size_t)c->max_items)
			return vfail(err, errlen, path,
			    "%zu items are more than %lld", n, c->max_items);
		if (c->min_items >= 0 && n < (size_t)c->min_items)
			return vfail(err, errlen, path,
			    "%zu items are fewer than %lld", n, c->min_items);
		if (c->items != NULL)
			json_array_foreach(v, i, e)
				if (validate_child(c->items, e, path, NULL, i,
				    err, errlen) < 0)
					return -1;
	}
	if (json_is_object(v))
		return validate_members(c, v, path, err, errlen);
	return 0;
}

int
dt_schema_run(const struct dt_schema *c, const json_t *value, char *err,
    size_t errlen)
{
	return validate(c, value, NULL, err, errlen);
}

int
dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen)
{
	struct dt_schema *c = dt_schema_compile(schema);
	int rc;

	if (c == NULL) {
		utf8_format(err, errlen, "out of memory");
		return -1;
	}
	rc = dt_schema_run(c, value, err, errlen);
	dt_schema_free(c);
	return rc;
}
