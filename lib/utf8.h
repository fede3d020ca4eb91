/*
 * utf8.h: keeping text valid UTF-8, as Jansson requires of every string
 * in a record, when a byte limit cuts it.
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
	size_t len = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 :
	    s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
	unsigned long cp = s[0] & (0x7f >> len);
	size_t i;

	if (len < 2)
		return len;
	for (i = 1; i < len; i++) {
		if (i >= n || (s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	return (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ? 0 : len;
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

	while (i < n)
		if ((k = utf8_seq((unsigned char *)s + i, n - i)) == 0)
			i++;
		else
			for (; k > 0; k--)
				s[o++] = s[i++];
	s[o] = '\0';
	return o;
}

/* snprintf into buf (len > 0), then utf8_fix(); returns the length. */
static inline size_t __attribute__((format(printf, 3, 4)))
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
 * out of memory.
 */
static inline char *
utf8_dup(const char *s, size_t n, size_t max)
{
	size_t i = 0, o = 0, k;
	char *out = malloc(max + 1);

	while (out != NULL && i < n) {
		k = s[i] != '\0' ? utf8_seq((const unsigned char *)s + i,
		    n - i) : 0;
		if (o + (k > 0 ? k : 3) > max)
			break;
		memcpy(out + o, k > 0 ? s + i : "\xef\xbf\xbd", k > 0 ? k : 3);
		o += k > 0 ? k : 3;
		i += k > 0 ? k : 1;
	}
	if (out != NULL)
		out[o] = '\0';
	return out;
}

#endif
