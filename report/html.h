/*
 * html.h: a growing text buffer with HTML escaping, and the length
 * Telegram gives HTML text.
 */
#ifndef DT_RPT_HTML_H
#define DT_RPT_HTML_H

#include <stddef.h>

/*
 * A growing text buffer; the functions append (dt_rpt_buf_html with
 * HTML's <, >, & and " escaped) and set oom when out of memory.
 */
struct dt_rpt_buf {
	char *s;
	size_t len, cap;
	int oom;
};
void dt_rpt_buf_add(struct dt_rpt_buf *b, const char *s, size_t n);
void dt_rpt_buf_puts(struct dt_rpt_buf *b, const char *s);
void dt_rpt_buf_printf(struct dt_rpt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dt_rpt_buf_html(struct dt_rpt_buf *b, const char *s, size_t n);
void dt_rpt_buf_free(struct dt_rpt_buf *b);

/*
 * The length Telegram gives the text after parsing the HTML html (tags
 * not counted, an entity one character), in UTF-16 code units.
 */
size_t dt_rpt_html_utf16(const char *html, size_t n);

#endif
