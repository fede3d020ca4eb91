/*
 * format.h: the Telegram report (HTML) made from the summary, in English
 * or Russian, split under Telegram's length limit.
 */
#ifndef DT_RPT_FORMAT_H
#define DT_RPT_FORMAT_H

#include <stddef.h>

#include <jansson.h>

/*
 * Builds the report for summary in lang ("en" or "ru") and splits it at
 * line boundaries into messages of at most limit UTF-16 units (after
 * parsing), every tag closed on the line that opened it.  Returns a new
 * reference to an array of the messages' strings, or NULL when out of
 * memory.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

#endif
