/*
 * fuzz.h: what the libFuzzer targets in fuzz/ share.  Each target is one
 * file (fuzz/NAME.c); see fuzz/fuzz.mk and docs/proof.md.
 */
#ifndef DT_FUZZ_H
#define DT_FUZZ_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run with the failed condition named, so it is saved. */
#define FUZZ_CHECK(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,	\
		    __LINE__, #c);					\
		abort();						\
	}								\
} while (0)

/*
 * Sets the program name, lowers logging to errors only (a warning per
 * input would slow fuzzing down) and sends stdout to /dev/null, where
 * dt_emit and printed reports then go.
 */
static inline void
fuzz_quiet(const char *prog)
{
	int fd;

	dt_log_init(prog);
	dt_log_adjust(-DT_LOG_TRACE);
	fd = open("/dev/null", O_WRONLY);
	FUZZ_CHECK(fd >= 0 && dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
	close(fd);
}

/*
 * Returns 1 when the n bytes at s are valid UTF-8 (no overlong forms,
 * no surrogates, nothing above U+10FFFF), else 0.
 */
static inline int
fuzz_utf8_ok(const char *p, size_t len)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i], n, k;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4, cp = c & 0x07;
		else
			return 0;
		if (n > len - i)
			return 0;
		for (k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += n;
	}
	return 1;
}

#endif
