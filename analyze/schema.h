/*
 * schema.h: the subset of JSON Schema that dt-analyze checks locally.
 *
 * Supported keywords: type (a name or a list of names), properties,
 * required, additionalProperties (a boolean or a schema), items, minItems,
 * maxItems, minLength, maxLength (in Unicode code points), minimum,
 * maximum, enum; the annotations title, description, default, examples,
 * $schema, $id and $comment are accepted and ignored.  Anything else is
 * refused when the schema is loaded, so that a schema can never promise
 * a check that is silently skipped.
 */
#ifndef DT_SCHEMA_H
#define DT_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

/*
 * Checks that schema is an object that uses only the supported keywords
 * with values of the right shape, recursively.  Returns 0, or -1 with a
 * description ("$.properties.topics: unsupported keyword \"pattern\"")
 * in err.
 */
int dt_schema_check(const json_t *schema, char *err, size_t errlen);

/*
 * Validates value against schema (which passed dt_schema_check).
 * Returns 0 when it is valid, or -1 with the first violation found,
 * named by its path ("$.topics[5]: ..."), in err.
 */
int dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen);

/* Number of Unicode code points in the UTF-8 string s of n bytes. */
size_t dt_utf8_len(const char *s, size_t n);

#endif
