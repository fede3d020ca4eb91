/*
 * schema.h: the subset of JSON Schema that dt-analyze checks locally:
 * type (a name or a list of names), properties, required,
 * additionalProperties (a boolean or a schema), items, minItems,
 * maxItems, minLength, maxLength (in Unicode code points), minimum,
 * maximum, enum; the annotations title, description, default, examples,
 * $schema, $id and $comment are ignored.  Any other keyword is refused
 * when the schema is loaded: a schema never promises a check not made.
 */
#ifndef DT_SCHEMA_H
#define DT_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

/*
 * Checks that schema uses only those keywords, with values of the right
 * shape.  Returns 0, or -1 with a description in err
 * ("$.properties.topics: unsupported keyword \"pattern\"").
 */
int dt_schema_check(const json_t *schema, char *err, size_t errlen);

/*
 * Validates value against schema (checked before).  Returns 0, or -1
 * with the first violation found, named by its path ("$.topics[5]: ...").
 */
int dt_schema_validate(const json_t *schema, const json_t *value, char *err,
    size_t errlen);

/* Number of Unicode code points in the UTF-8 string s of n bytes. */
size_t dt_utf8_len(const char *s, size_t n);

#endif
