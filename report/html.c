/*
 * html.c: HTML escaping, and the length Telegram gives HTML text
 * (html.h).
 */
#include <stddef.h>

#include "html.h"

void
dt_rpt_buf_html(struct dt_buf *b, const char *s, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		const char *e;

		switch (s[i]) {
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '&':
			e = "&amp;";
			break;
		case '"':
			e = "&quot;";
			break;
		default:
			continue;
		}
		dt_buf_add(b, s + start, i - start);
		dt_buf_puts(b, e);
		start = i + 1;
	}
	dt_buf_add(b, s + start, n - start);
}

size_t
dt_rpt_html_utf16(const char *html, size_t n)
{
	const unsigned char *p = (const unsigned char *)html;
	size_t i = 0, units = 0;

	while (i < n) {
		unsigned char c = p[i];

		if (c == '<') {
			while (i < n && p[i] != '>')
				i++;
			i++;
			continue;
		}
		if (c == '&') {
			while (i < n && p[i] != ';')
				i++;
			i++;
			units++;
			continue;
		}
		if (c < 0x80 || (c >= 0xC0 && c < 0xF0))
			units++;
		else if (c >= 0xF0)
			units += 2;
		i++;
	}
	return units;
}
