/*
 * fuzz/postgrest.c: how dt-fetch and dt-store describe a failed
 * Supabase data API (PostgREST) call: describe_error in lib/supabase.c,
 * included here to reach it, on arbitrary error bodies.
 *
 * Input: bytes 0-1 pick the HTTP status (400-599), the rest is the body
 * (PostgREST's {"code","message","details","hint"} or anything a proxy
 * may send).  Checks: no crash, leak or sanitizer report; the message is
 * NUL-terminated, starts with "HTTP <status>", never holds the service
 * key, and is valid UTF-8 whenever the body was (it goes into the stage
 * records, which are JSON).
 *
 * fuzz-sources:
 * fuzz-options: -max_len=4096
 */
#include <string.h>

#include "fuzz.h"

#include "../lib/supabase.c"

#define KEY "fuzz-service-role-key-0123456789"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-postgrest");
	dt_log_secret(KEY);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dt_sb_result res;
	char *raw, head[32];

	if (size < 2)
		return 0;
	memset(&res, 0, sizeof(res));
	res.status = 400 + (data[0] << 8 | data[1]) % 200;
	raw = malloc(size - 2 + 1);
	FUZZ_CHECK(raw != NULL);
	memcpy(raw, data + 2, size - 2);
	raw[size - 2] = '\0';
	res.body = json_loadb(raw, size - 2, 0, NULL);
	describe_error(&res, raw);
	FUZZ_CHECK(memchr(res.message, '\0', sizeof(res.message)) != NULL);
	snprintf(head, sizeof(head), "HTTP %ld", res.status);
	FUZZ_CHECK(strncmp(res.message, head, strlen(head)) == 0);
	FUZZ_CHECK(strstr(res.message, KEY) == NULL);
	if (fuzz_utf8_ok(raw, size - 2))
		FUZZ_CHECK(fuzz_utf8_ok(res.message, strlen(res.message)));
	dt_sb_result_clear(&res);
	free(raw);
	return 0;
}
