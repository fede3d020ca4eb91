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
 * returns a record (an object) or a bad line with a UTF-8 reason and a
 * valid UTF-8 excerpt, the counts add up, and every record and bad-line
 * error record can be written with dt_emit.
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
#include "record.h"

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
	unsigned long nrec = 0, nbad = 0, nerr = 0;
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
			nrec++;
			break;
		case DT_NDJSON_BAD:
			FUZZ_CHECK(rec == NULL && dt_reader_error(r)[0] != '\0');
			FUZZ_CHECK(fuzz_utf8_ok(dt_reader_error(r),
			    strlen(dt_reader_error(r))));
			FUZZ_CHECK(strlen(dt_reader_excerpt(r)) <= 256 * 3);
			FUZZ_CHECK(fuzz_utf8_ok(dt_reader_excerpt(r),
			    strlen(dt_reader_excerpt(r))));
			rec = dt_record_bad_line(dt_reader_where(r),
			    dt_reader_error(r), dt_reader_excerpt(r));
			FUZZ_CHECK(rec != NULL);
			dt_emit(rec);
			json_decref(rec);
			nbad++;
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
	FUZZ_CHECK(dt_reader_nrecords(r) == nrec && dt_reader_nbad(r) == nbad);
	FUZZ_CHECK(dt_reader_nfail(r) == nerr);
	FUZZ_CHECK(nerr == (unsigned long)(npaths - 1));
	dt_reader_free(r);
	return 0;
}
