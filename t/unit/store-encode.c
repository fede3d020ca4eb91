/*
 * store-encode: checks dt-store's JSON encoder (store/encode.c) against
 * Jansson's.  Every line of the files named is parsed (any JSON value,
 * NUL escapes allowed); dt_encode_value() must write exactly what
 * json_dumps() writes with DT_LINE_FLAGS, and for an object
 * dt_encode_line() plus "}" the same.  Prints "N values, N objects" and
 * exits 0, or prints the first difference and exits 1.  Lines that do
 * not parse are skipped (counted on stderr).  Used by
 * t/300-store-settle.bats.
 *
 *   store-encode FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../store/encode.c"

static int
check(json_t *v, unsigned long *objects)
{
	char *want = json_dumps(v, DT_LINE_FLAGS | JSON_ENCODE_ANY);
	struct dt_buf b = {NULL, 0, 0};
	struct dt_spans sp;
	int bad = 0;

	if (want == NULL || dt_encode_value(&b, v) < 0 ||
	    b.len != strlen(want) || memcmp(b.p, want, b.len) != 0) {
		printf("value differs:\n  jansson: %s\n  encoder: %.*s\n",
		    want != NULL ? want : "(null)", (int)b.len, b.p);
		bad = 1;
	} else if (json_is_object(v)) {
		b.len = 0;
		if (dt_encode_line(&b, v, &sp) < 0 ||
		    dt_buf_put(&b, "}", 1) < 0 || b.len != strlen(want) ||
		    memcmp(b.p, want, b.len) != 0) {
			printf("line differs:\n  jansson: %s\n  encoder: %.*s\n",
			    want, (int)b.len, b.p);
			bad = 1;
		}
		(*objects)++;
	}
	dt_buf_free(&b);
	free(want);
	return bad;
}

int
main(int argc, char **argv)
{
	unsigned long values = 0, objects = 0, skipped = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int i;

	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");

		if (f == NULL) {
			perror(argv[i]);
			return 2;
		}
		while ((n = getline(&line, &cap, f)) > 0) {
			json_t *v = json_loadb(line, (size_t)n,
			    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

			if (v == NULL) {
				skipped++;
				continue;
			}
			values++;
			if (check(v, &objects) != 0) {
				json_decref(v);
				fclose(f);
				free(line);
				return 1;
			}
			json_decref(v);
		}
		fclose(f);
	}
	free(line);
	if (skipped > 0)
		fprintf(stderr, "store-encode: %lu lines skipped\n", skipped);
	printf("%lu values, %lu objects\n", values, objects);
	return 0;
}
