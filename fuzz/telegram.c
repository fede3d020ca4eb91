/*
 * fuzz/telegram.c: dt-report's reader of Telegram Bot API answers
 * (read_answer in report/telegram.c, included here to reach it) on
 * arbitrary bodies.
 *
 * Input: byte 0 picks the HTTP status (bit 0: 200 or 429), the rest is
 * the body.  Checks: no crash, leak or sanitizer report; an answer only
 * for a JSON object with "ok": true and HTTP 200; the reason kept is
 * NUL-terminated and valid UTF-8; a wait is taken only from a 429's
 * integer retry_after, and at most a day.
 *
 * fuzz-sources: report/format.c
 * fuzz-options: -max_len=4096
 */
#include <string.h>

#include "fuzz.h"

#include "../report/telegram.c"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-telegram");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dt_http_resp r = { 0 };
	struct call c = { 0 };
	json_t *o, *answer, *ra;

	if (size < 1)
		return 0;
	/* The HTTP client hands over a NUL-terminated copy of the body. */
	r.body = malloc(size);
	FUZZ_CHECK(r.body != NULL);
	memcpy(r.body, data + 1, size - 1);
	r.body[size - 1] = '\0';
	r.len = size - 1;
	r.status = data[0] & 1 ? 429 : 200;
	r.retry_after_ms = -1;
	memset(c.why, 'x', sizeof(c.why));
	answer = read_answer(&r, &c);
	FUZZ_CHECK(memchr(c.why, '\0', sizeof(c.why)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(c.why, strlen(c.why)));
	o = json_loads(r.body, 0, NULL);
	FUZZ_CHECK((answer != NULL) == (r.status == 200 &&
	    json_is_true(json_object_get(o, "ok"))));
	ra = json_object_get(json_object_get(o, "parameters"), "retry_after");
	if (r.status == 429 && json_is_integer(ra) &&
	    json_integer_value(ra) >= 0)
		FUZZ_CHECK(r.retry_after_ms >= 0 &&
		    r.retry_after_ms <= 86400000);
	else
		FUZZ_CHECK(r.retry_after_ms == -1);
	json_decref(o);
	json_decref(answer);
	free(r.body);
	return 0;
}
