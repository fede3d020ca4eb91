/*
 * utf8.h: checking, cutting and cleaning text so that it stays valid
 * UTF-8, as JSON records need.
 *
 * Everything the stages write goes into JSON records, and Jansson
 * refuses a string that is not valid UTF-8: a message cut inside a
 * character by a byte limit (a fixed buffer, "%.60s", Jansson's own
 * error text) would make the record that carries it fail to encode.
 * These helpers check text, cut it on character boundaries and clean up
 * what was cut elsewhere.
 *
 * The functions are static and defined here, so that every file, unit
 * test and fuzz target that compiles one of the stages' files has them
 * without linking another object.
 */
#ifndef DT_UTF8_H
#define DT_UTF8_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Returns the length of the well-formed UTF-8 sequence at s, of which n
 * bytes are available, or 0 when there is none: no overlong forms, no
 * surrogates, nothing above U+10FFFF (the rules Jansson applies).
 */
static inline size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	unsigned long cp;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * Returns the offset of the first byte of the n at s that is not part
 * of a well-formed character, or n when all of them are valid UTF-8.
 */
static inline size_t
utf8_check(const char *buf, size_t n)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0, k;

	while (i < n) {
		if ((k = utf8_seq(s + i, n - i)) == 0)
			return i;
		i += k;
	}
	return n;
}

/*
 * Writes code point c (at most U+10FFFF, no surrogate) to out as UTF-8.
 * Returns the bytes written, 1 to 4.
 */
static inline size_t
utf8_put(char *out, unsigned long c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * Returns the length of the longest prefix of the n bytes at s that is
 * at most max bytes, valid UTF-8 and ends on a character boundary: the
 * place to cut s for a limit of max bytes.  The prefix stops early at a
 * byte that starts no valid character.
 */
static inline size_t
utf8_cut(const char *s, size_t n, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	if (max > n)
		max = n;
	while (i < max) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = utf8_seq(u + i, n - i)) == 0 || i + k > max)
			break;
		i += k;
	}
	return i;
}

/*
 * Makes the NUL-terminated string s valid UTF-8 in place by dropping
 * every byte that is not part of a well-formed character: the start of
 * a character cut off at the end of a buffer, or inside a quote that
 * was cut by a byte count.  Returns the new length.
 */
static inline size_t
utf8_fix(char *s)
{
	unsigned char *u = (unsigned char *)s;
	size_t i = 0, o = 0, n = strlen(s), k;

	while (i < n) {
		if (u[i] < 0x80) {
			u[o++] = u[i++];
			continue;
		}
		if ((k = utf8_seq(u + i, n - i)) == 0) {
			i++;
			continue;
		}
		memmove(u + o, u + i, k);
		o += k;
		i += k;
	}
	u[o] = '\0';
	return o;
}

/*
 * printf into buf (len bytes, len > 0) and keep the result valid UTF-8:
 * a message cut by the buffer's size ends on a character boundary, and
 * bytes from the arguments that are not UTF-8 are dropped.  Returns the
 * length written.
 */
static inline size_t
utf8_format(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline size_t
utf8_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, len, fmt, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
	return utf8_fix(buf);
}

/*
 * Returns a new NUL-terminated copy of at most max bytes of the n bytes
 * at s, valid UTF-8: every byte that starts no valid character (and a
 * NUL) becomes U+FFFD, and the copy ends on a character boundary.  The
 * caller frees it; NULL when out of memory.
 */
static inline char *
utf8_dup(const char *s, size_t n, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, k;
	char *out;

	if ((out = malloc(max + 1)) == NULL)
		return NULL;
	while (i < n) {
		if (u[i] != 0 && (k = utf8_seq(u + i, n - i)) > 0) {
			if (o + k > max)
				break;
			memcpy(out + o, u + i, k);
			o += k;
			i += k;
			continue;
		}
		if (o + 3 > max)
			break;
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i++;
	}
	out[o] = '\0';
	return out;
}

#endif
