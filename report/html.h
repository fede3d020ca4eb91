/*
 * html.h: HTML escaping into a struct dt_buf, and the length Telegram
 * gives HTML text.
 */
#ifndef DT_RPT_HTML_H
#define DT_RPT_HTML_H

#include <stddef.h>

#include "buf.h"

/*
 * Appends the n bytes at s to b with HTML's <, >, & and " escaped; an
 * append out of memory sets b->oom.
 */
void dt_rpt_buf_html(struct dt_buf *b, const char *s, size_t n);

/*
 * The length Telegram gives the text after parsing the HTML html (tags
 * not counted, an entity one character), in UTF-16 code units.
 */
size_t dt_rpt_html_utf16(const char *html, size_t n);

#endif
