/*
 * text.c: making untrusted text fit to count and to show (text.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tally.h"
#include "text.h"
#include "utf8.h"

/*
 * Decodes the character at s (n bytes left) into *c and returns its
 * length; a byte that starts no valid character is U+FFFD of length 1.
 */
static size_t
next_char(const char *s, size_t n, uint32_t *c)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k = utf8_seq(u, n), i;

	if (k == 0) {
		*c = 0xFFFD;
		return 1;
	}
	*c = k == 1 ? u[0] : u[0] & (0xFFu >> (k + 1));
	for (i = 1; i < k; i++)
		*c = (*c << 6) | (u[i] & 0x3F);
	return k;
}

/* 1: white space; 2: invisible control to drop; 0: ordinary. */
static int
char_class(uint32_t c)
{
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v' || c == 0xA0 || c == 0x1680 ||
	    (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	    c == 0x202F || c == 0x205F || c == 0x3000)
		return 1;
	if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x200B ||
	    c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xFEFF)
		return 2;
	return 0;
}

/* Latin and Cyrillic capitals made small. */
static uint32_t
fold(uint32_t c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
	    (c >= 0x410 && c <= 0x42F))
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

size_t
dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len)
{
	size_t o = 0, k, m, max = len - 1;
	char tmp[4];
	uint32_t c;
	int space = 0;

	if (max > DT_RPT_KEY_MAX)
		max = DT_RPT_KEY_MAX;
	for (; n > 0; s += k, n -= k) {
		k = next_char(s, n, &c);
		if (char_class(c) == 1)
			space = o > 0;
		if (char_class(c) != 0)
			continue;
		m = utf8_put(tmp, fold(c));
		if (o + space + m > max)
			break;
		if (space)
			buf[o++] = ' ';
		space = 0;
		memcpy(buf + o, tmp, m);
		o += m;
	}
	buf[o] = '\0';
	return o;
}

char *
dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len)
{
	size_t n = strlen(s), o = 0, chars = 0;
	uint32_t c;

	while (n > 0) {
		size_t k = next_char(s, n, &c);

		if (chars == max_chars || o + 4 + 3 + 1 > len) {
			memcpy(buf + o, "\xE2\x80\xA6", 3); /* … */
			o += 3;
			break;
		}
		s += k;
		n -= k;
		o += utf8_put(buf + o, char_class(c) != 0 ? ' ' : c);
		chars++;
	}
	buf[o] = '\0';
	return buf;
}

void
dt_rpt_buf_html(struct dt_buf *b, const char *s, size_t n)
{
	static const char special[] = "<>&\"";
	static const char *const ent[] = {"&lt;", "&gt;", "&amp;", "&quot;"};
	const char *e;
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0' || (e = strchr(special, s[i])) == NULL)
			continue;
		dt_buf_add(b, s + start, i - start);
		dt_buf_puts(b, ent[e - special]);
		start = i + 1;
	}
	dt_buf_add(b, s + start, n - start);
}

size_t
dt_rpt_html_utf16(const char *html, size_t n)
{
	const unsigned char *p = (const unsigned char *)html;
	size_t i, units = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '<' || p[i] == '&') {
			unsigned char end = p[i] == '<' ? '>' : ';';

			units += p[i] == '&';
			while (i < n && p[i] != end)
				i++;
		} else if (p[i] < 0x80 || (p[i] >= 0xC0 && p[i] < 0xF0))
			units++;
		else if (p[i] >= 0xF0)
			units += 2;
	}
	return units;
}
