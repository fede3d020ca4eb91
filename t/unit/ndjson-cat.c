/*
 * ndjson-cat: copies NDJSON records from the files named (or stdin) to
 * stdout through the lib/ndjson reader and writer; a bad line becomes a
 * bad_record error record.  Exits 65 when any line was bad, 66 when a
 * file could not be read.  Used by t/0xx-lib-ndjson.bats.
 *
 *   ndjson-cat [-r] [-m max_line] [file ...]
 *
 * -r prints the peak resident set size (VmHWM) to stderr at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "ndjson.h"

int
main(int argc, char **argv)
{
	struct dt_reader *r;
	long long max = 0;
	unsigned long n[3] = {0, 0, 0};  /* records, bad lines, bad files */
	json_t *rec;
	int c, rc, status = 0, rss = 0;

	dt_log_init("ndjson-cat");
	dt_out_init();
	while ((c = getopt(argc, argv, "m:r")) != -1) {
		if (c == 'r')
			rss = 1;
		else if (c != 'm' ||
		    dt_parse_ll("-m", optarg, 1, 1LL << 30, &max))
			return DT_EXIT_USAGE;
	}
	if ((r = dt_reader_new(argv + optind, argc - optind, (size_t)max)) ==
	    NULL)
		return 70;
	while ((rc = dt_reader_next(r, &rec)) != DT_NDJSON_EOF) {
		n[rc < 0 ? 2 : rc - 1]++;
		if (rc == DT_NDJSON_ERROR)
			continue;
		c = dt_emit(rec);
		json_decref(rec);
		if (c < 0)
			break;
	}
	if (n[1] > 0)
		status = DT_EXIT_DATAERR;
	if (n[2] > 0)
		status = 66;
	fprintf(stderr, "ndjson-cat: %lu records, %lu bad lines\n", n[0],
	    n[1]);
	dt_reader_free(r);
	if (rss) {
		char line[256];
		FILE *f = fopen("/proc/self/status", "r");

		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "VmHWM:", 6) == 0)
				fputs(line, stderr);
		if (f != NULL)
			fclose(f);
	}
	if (dt_out_status() != 0)
		status = dt_out_status();
	return status;
}
