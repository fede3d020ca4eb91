/*
 * fuzz/ndjson.c: the NDJSON reader (lib/ndjson.c) on arbitrary bytes.
 *
 * Input: byte 0 picks the maximum line length (0: the default 1 MiB,
 * else 1..255 bytes so that "line too long" is reached often), byte 1
 * seeds how the rest is cut into reads (0x80 also adds a missing file
 * after stdin); the rest is what the reader reads.
 *
 * The data goes through a SOCK_SEQPACKET socket pair as several
 * messages: each read(2) of the reader then returns exactly one of
 * them, so lines split across reads are exercised the same way on
 * every run.  Checks: the reader never crashes or leaks, every call
 * returns a record (an object) or a bad line's error record with a
 * reason and an excerpt of at most 256 bytes (JSON, so UTF-8), and every
 * record can be written with dt_emit.
 *
 * fuzz-sources:
 * fuzz-options: -max_len=20000
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "ndjson.h"

#define MAX_CHUNKS 48
#define MAX_MESSAGE (64 * 1024) /* the reader's buffer */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-ndjson");
	dt_out_init();
	return 0;
}

/* Sends data as messages of pseudo-random sizes; closes the sender. */
static void
send_chunks(int fd, const uint8_t *data, size_t size, unsigned seed)
{
	size_t off = 0;
	int k;

	for (k = 0; off < size; k++) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = k < MAX_CHUNKS ? 1 + (seed >> 16) % 700 : MAX_MESSAGE;
		/* A longer message would be cut by the reader's read(2). */
		if (n > MAX_MESSAGE)
			n = MAX_MESSAGE;
		if (n > size - off)
			n = size - off;
		FUZZ_CHECK(send(fd, data + off, n, 0) == (ssize_t)n);
		off += n;
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char missing[] = "/nonexistent/fuzz-ndjson", dash[] = "-";
	char *paths[] = { dash, missing };
	struct dt_reader *r;
	unsigned long nerr = 0;
	const char *excerpt;
	json_t *rec;
	int sv[2], rc, npaths;
	size_t max_line;

	if (size < 2)
		return 0;
	max_line = data[0];
	npaths = data[1] == 0x80 ? 2 : 1;
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	/* Room for every message, so the sender never blocks. */
	rc = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &rc, sizeof(rc));
	send_chunks(sv[0], data + 2, size - 2, data[1]);
	FUZZ_CHECK(dup2(sv[1], STDIN_FILENO) == STDIN_FILENO);
	close(sv[1]);

	r = dt_reader_new(paths, npaths, max_line);
	FUZZ_CHECK(r != NULL);
	while ((rc = dt_reader_next(r, &rec)) != DT_NDJSON_EOF) {
		switch (rc) {
		case DT_NDJSON_RECORD:
			FUZZ_CHECK(json_is_object(rec));
			FUZZ_CHECK(dt_reader_error(r)[0] == '\0');
			dt_emit(rec);
			json_decref(rec);
			break;
		case DT_NDJSON_BAD:
			FUZZ_CHECK(rec != NULL && dt_reader_error(r)[0] != '\0');
			excerpt = json_string_value(json_object_get(
			    json_object_get(rec, "input"), "excerpt"));
			FUZZ_CHECK(excerpt != NULL && strlen(excerpt) <= 256);
			dt_emit(rec);
			json_decref(rec);
			break;
		case DT_NDJSON_ERROR:
			FUZZ_CHECK(rec == NULL);
			nerr++;
			break;
		default:
			FUZZ_CHECK(!"an unknown return value");
		}
		(void)dt_reader_wait(r, 0);
	}
	FUZZ_CHECK(nerr == (unsigned long)(npaths - 1));
	dt_reader_free(r);
	return 0;
}
