/*
 * utf8.h: keeping text valid UTF-8, as Jansson requires of every string
 * in a record, when a byte limit cuts it.  Static, so that a fuzz target
 * compiling a stage's file has them without linking anything.
 */
#ifndef DT_UTF8_H
#define DT_UTF8_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The length of the well-formed character at s (n bytes there), or 0:
 * no overlong form, surrogate or code point past U+10FFFF, as Jansson.
 */
static inline size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned long cp = s[0];
	size_t len, i;

	if (cp < 0x80)
		return 1;
	if (cp >= 0xc2 && cp <= 0xdf)
		len = 2;
	else if (cp >= 0xe0 && cp <= 0xef)
		len = 3;
	else if (cp >= 0xf0 && cp <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	cp &= 0x7f >> len;
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

/* Writes code point c (a valid one) to out; returns its 1 to 4 bytes. */
static inline size_t
utf8_put(char *out, unsigned long c)
{
	size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4, i;

	if (n == 1) {
		out[0] = (char)c;
		return 1;
	}
	for (i = n - 1; i > 0; i--, c >>= 6)
		out[i] = (char)(0x80 | (c & 0x3f));
	/* The lead byte: 110xxxxx, 1110xxxx or 11110xxx. */
	out[0] = (char)(((0xff00 >> n) & 0xff) | c);
	return n;
}

/*
 * The length of the longest prefix of the n bytes at s made of whole
 * characters and at most max bytes: where to cut s.  With max = n, the
 * offset of the first byte that is not UTF-8 (n when none is).
 */
static inline size_t
utf8_cut(const char *s, size_t n, size_t max)
{
	size_t i = 0, k;

	while (i < n && (k = utf8_seq((const unsigned char *)s + i,
	    n - i)) > 0 && i + k <= max)
		i += k;
	return i;
}

/* Drops from s every byte of no character, in place; returns the length. */
static inline size_t
utf8_fix(char *s)
{
	size_t i = 0, o = 0, n = strlen(s), k;

	while (i < n) {
		if ((k = utf8_seq((unsigned char *)s + i, n - i)) == 0) {
			i++;
			continue;
		}
		memmove(s + o, s + i, k);
		o += k;
		i += k;
	}
	s[o] = '\0';
	return o;
}

/* snprintf into buf (len > 0), then utf8_fix(); returns the length. */
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
 * Returns a new copy of at most max bytes of the n at s, whole
 * characters, with U+FFFD for each byte of none and each NUL; NULL when
 * out of memory.  The caller frees it.
 */
static inline char *
utf8_dup(const char *s, size_t n, size_t max)
{
	size_t i = 0, o = 0;
	char *out;

	if ((out = malloc(max + 1)) == NULL)
		return NULL;
	while (i < n) {
		const char *c = s + i;
		size_t k = *c != '\0' ? utf8_seq((const unsigned char *)c,
		    n - i) : 0, w = k;

		if (k == 0) {   /* a byte that starts no character */
			c = "\xef\xbf\xbd";
			w = 3;
			k = 1;
		}
		if (o + w > max)
			break;
		memcpy(out + o, c, w);
		o += w;
		i += k;
	}
	out[o] = '\0';
	return out;
}

#endif
