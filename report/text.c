/*
 * text.c: topic normalisation and clipping (text.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "counters.h"
#include "utf8.h"

/*
 * Decodes one UTF-8 character at s (n bytes left).  Returns its code
 * point and stores its length in *len; an invalid sequence is U+FFFD of
 * length 1.
 */
static uint32_t
utf8_next(const unsigned char *s, size_t n, size_t *len)
{
	uint32_t c = s[0], min;
	size_t k, i;

	*len = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xC2 && c <= 0xDF) {
		k = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		k = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		k = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0xFFFD;
	if (n < k)
		return 0xFFFD;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0xFFFD;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0xFFFD;
	*len = k;
	return c;
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

static uint32_t
fold(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
		return c + 32;
	if (c >= 0x410 && c <= 0x42F)
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

size_t
dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, k, max;
	int space = 0;

	max = len - 1 < DT_RPT_KEY_MAX ? len - 1 : DT_RPT_KEY_MAX;
	while (n > 0) {
		uint32_t c;
		char tmp[4];
		size_t m;

		/* Plain ASCII letters and digits, the common case. */
		if (*p > 0x20 && *p < 0x7F) {
			if (o + space + 1 > max)
				break;
			if (space)
				buf[o++] = ' ';
			space = 0;
			buf[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 :
			    *p);
			p++;
			n--;
			continue;
		}
		c = utf8_next(p, n, &k);
		p += k;
		n -= k;
		switch (char_class(c)) {
		case 1:
			space = o > 0;
			continue;
		case 2:
			continue;
		}
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

/* The clipped copy the report shows: see text.h. */
char *
dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, k, chars = 0;

	while (n > 0) {
		uint32_t c = utf8_next(p, n, &k);
		char tmp[4];
		size_t m;

		if (chars == max_chars || o + 4 + 3 + 1 > len) {
			memcpy(buf + o, "\xE2\x80\xA6", 3); /* … */
			o += 3;
			break;
		}
		p += k;
		n -= k;
		if (char_class(c) != 0)
			c = ' ';
		m = utf8_put(tmp, c);
		memcpy(buf + o, tmp, m);
		o += m;
		chars++;
	}
	buf[o] = '\0';
	return buf;
}
