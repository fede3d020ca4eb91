/*
 * fuzz/report-scan.c: dt-report's own streaming JSON scanner
 * (report/scan.c, dt_rpt_scan_line) on arbitrary lines, checked against
 * Jansson and the lib reader's UTF-8 rule.
 *
 * Checks: no crash, leak or sanitizer report; a rejected line has a
 * reason (valid UTF-8); every string the scanner hands out lies in the
 * arena, is NUL-terminated and valid UTF-8; and the scanner accepts
 * exactly the lines the lib reader accepts (valid UTF-8 and a JSON
 * object to Jansson), except for the differences docs/proof.md lists:
 * numbers Jansson cannot hold (the scanner only checks their syntax), a
 * \u0000 in a key (Jansson refuses it), a raw NUL byte (Jansson ends a
 * number at it), and nesting deeper than the scanner's 512 levels.
 *
 * fuzz-sources: report/scan.c
 * fuzz-options: -max_len=4096
 */
#include <string.h>

#include <jansson.h>

#include "../report/report.h"
#include "fuzz.h"

static const char *const names[] = { "sentiment", "language", "topics",
	"action_items", "confidence" };
#define NNAMES ((int)(sizeof(names) / sizeof(names[0])))

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-report-scan");
	return 0;
}

/* Nesting depth of the line, counting brackets outside strings. */
static int
depth(const char *s, size_t n)
{
	int d = 0, max = 0, str = 0, esc = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (str) {
			if (esc)
				esc = 0;
			else if (s[i] == '\\')
				esc = 1;
			else if (s[i] == '"')
				str = 0;
		} else if (s[i] == '"')
			str = 1;
		else if (s[i] == '[' || s[i] == '{') {
			if (++d > max)
				max = d;
		} else if (s[i] == ']' || s[i] == '}')
			d--;
	}
	return max;
}

static void
check_span(const struct dt_rpt_span *sp, const char *arena, size_t alen)
{
	if (sp->s == NULL)
		return;
	FUZZ_CHECK(sp->s >= arena && sp->s + sp->n < arena + alen);
	FUZZ_CHECK(sp->s[sp->n] == '\0');
	FUZZ_CHECK(fuzz_utf8_ok(sp->s, sp->n));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dt_rpt_rec rec;
	const char *line = (const char *)data;
	char *arena, err[256];
	json_error_t je;
	json_t *v;
	int rc, i, k, jok;

	/* A line never holds its newline. */
	if (memchr(data, '\n', size) != NULL)
		return 0;
	arena = malloc(size + 2);
	FUZZ_CHECK(arena != NULL);
	err[0] = '\0';
	rc = dt_rpt_scan_line(line, size, arena, names, NNAMES, &rec, err,
	    sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		check_span(&rec.stage, arena, size + 2);
		check_span(&rec.run_id, arena, size + 2);
		check_span(&rec.status, arena, size + 2);
		check_span(&rec.message, arena, size + 2);
		check_span(&rec.started_at, arena, size + 2);
		check_span(&rec.kind, arena, size + 2);
		FUZZ_CHECK(rec.ncounts >= 0 && rec.ncounts <= DT_RPT_REC_COUNTS);
		for (i = 0; i < NNAMES; i++) {
			FUZZ_CHECK(rec.fields[i].nvals >= 0 &&
			    rec.fields[i].nvals <= DT_RPT_REC_VALUES);
			for (k = 0; k < rec.fields[i].nvals; k++)
				check_span(&rec.fields[i].vals[k], arena,
				    size + 2);
		}
	} else {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)));
	}

	v = NULL;
	je.text[0] = '\0';
	if (fuzz_utf8_ok(line, size))
		v = json_loadb(line, size, JSON_ALLOW_NUL | JSON_DECODE_ANY,
		    &je);
	jok = json_is_object(v);
	json_decref(v);
	if (jok && rc != 0)
		FUZZ_CHECK(memchr(line, '\0', size) != NULL ||
		    depth(line, size) > 511);
	if (!jok && rc == 0)
		FUZZ_CHECK(strstr(je.text, "overflow") != NULL ||
		    strstr(je.text, "too big") != NULL ||
		    strstr(je.text, "NUL byte in object key") != NULL);
	free(arena);
	return 0;
}
