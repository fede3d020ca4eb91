/*
 * html.c: the growing text buffer the report and the metrics are written
 * into, HTML escaping, and the length Telegram gives HTML text (html.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"

void
dt_rpt_buf_add(struct dt_rpt_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->s, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
dt_rpt_buf_puts(struct dt_rpt_buf *b, const char *s)
{
	dt_rpt_buf_add(b, s, strlen(s));
}

void
dt_rpt_buf_printf(struct dt_rpt_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	dt_rpt_buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
	    sizeof(tmp) - 1);
}

void
dt_rpt_buf_html(struct dt_rpt_buf *b, const char *s, size_t n)
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
		dt_rpt_buf_add(b, s + start, i - start);
		dt_rpt_buf_puts(b, e);
		start = i + 1;
	}
	dt_rpt_buf_add(b, s + start, n - start);
}

void
dt_rpt_buf_free(struct dt_rpt_buf *b)
{
	if (b == NULL)
		return;
	free(b->s);
	memset(b, 0, sizeof(*b));
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
