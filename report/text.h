/*
 * text.h: the Telegram report, and untrusted text made fit to count and
 * to show (format.c).
 */
#ifndef DT_RPT_TEXT_H
#define DT_RPT_TEXT_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

/*
 * Normalises a topic (s, n bytes) into buf (len >= DT_RPT_KEY_MAX + 1):
 * white space trimmed and runs of it made one space, control and
 * invisible characters dropped, Latin and Cyrillic capitals made small,
 * cut to DT_RPT_KEY_MAX bytes.  Returns the length (0: nothing left).
 */
size_t dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len);

/*
 * Copies at most max_chars characters of the UTF-8 string s into buf
 * (len bytes), making control, line-separator and bidi-override
 * characters spaces and invalid bytes U+FFFD, and ending a cut string
 * with "…".  Returns buf.
 */
char *dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len);

/*
 * The length Telegram gives the text after parsing the HTML html (tags
 * not counted, an entity one character), in UTF-16 code units.
 */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * Builds the report for the summary (docs/report.md) in lang ("en" or
 * "ru") and splits it at line boundaries into messages of at most limit
 * UTF-16 units after parsing, each a whole HTML text, those after the
 * first numbered.  Returns a new array of the messages' strings, or
 * NULL when out of memory.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

#endif
