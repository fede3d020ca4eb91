/*
 * schema.h: the subset of JSON Schema dt-analyze checks locally (the
 * keywords docs/analyze.md lists); a schema using any other is refused.
 */
#ifndef DT_SCHEMA_H
#define DT_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

/*
 * Checks that schema uses only those keywords, with values of the right
 * shape.  Returns 0, or -1 with the cause in err ("$.properties.topics:
 * unsupported keyword \"pattern\"").
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
