/*
 * fuzz/fetch-rows.c: dt-fetch's reading of a dt_claim / dt_peek reply
 * (emit_rows in fetch/claim.c, included here to reach it) on
 * arbitrary bodies.
 *
 * Input: byte 0 bit 0 picks claim or peek, bit 1 --reuse (its "reused"
 * column: a stored analysis, or a row with the same text); the rest is
 * the reply body.
 * Checks: no crash, leak or sanitizer report; a reply that is not an
 * array of {"source_id": string, "data": object} rows is refused with
 * status 75 and a message (valid UTF-8); otherwise every row becomes one
 * record and the last source id is kept.
 *
 * fuzz-options: -max_len=8192
 */
#include <string.h>

#include "fuzz.h"

#include "../fetch/claim.c"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-fetch-rows");
	dt_out_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dt_fetch f;
	json_t *last;
	json_t *rows;
	long long n;

	if (size < 1)
		return 0;
	rows = json_loadb((const char *)data + 1, size - 1, JSON_ALLOW_NUL,
	    NULL);
	if (rows == NULL)
		return 0;
	memset(&f, 0, sizeof(f));
	f.mode = data[0] & 1 ? 'p' : 'c';
	f.reuse = data[0] & 2 && f.mode == 'c' ? "v1" : NULL;
	f.id_col = "id";
	f.text_col = "text";
	f.max_text = 65536;
	f.max_line = 1048576;
	snprintf(f.run_id, sizeof(f.run_id), "fuzz-run");
	last = NULL;
	n = emit_rows(&f, rows, &last);
	if (n < 0) {
		FUZZ_CHECK(f.status == DT_EXIT_TEMPFAIL && f.message[0] != '\0');
		FUZZ_CHECK(fuzz_utf8_ok(f.message, strlen(f.message)));
	} else {
		FUZZ_CHECK(json_is_array(rows));
		FUZZ_CHECK((size_t)n == json_array_size(rows));
		FUZZ_CHECK(f.emitted == n);
		/* The last id is kept whole, however long. */
		FUZZ_CHECK(n == 0 || (last != NULL && json_equal(last,
		    json_object_get(json_array_get(rows, (size_t)n - 1),
		    "source_id"))));
	}
	json_decref(last);
	json_decref(rows);
	return 0;
}
