/*
 * dt-fetch: claims unanalyzed rows of the bot's table through Supabase's
 * data API and writes them as NDJSON source records.
 *
 * --claim leases batches through the dt_claim function until the per-run
 * cap is reached or nothing is left, writing each batch as soon as it
 * arrives.  --peek reads what a claim would get without leasing anything.
 * --requeue returns parked rows to the queue (dt_requeue) and says how
 * many.
 * The last line is always the stage report record, also when Supabase
 * cannot be reached.  SIGTERM, SIGINT or the stop file (DT_STOP_FILE)
 * end claiming after the current batch.  --check-config checks the
 * configuration and exits.  See docs/supabase.md.
 *
 * main is here; the other files are named in fetch.h.
 */
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "exit.h"

#include "fetch.h"

int
main(int argc, char **argv)
{
	struct dt_fetch f;
	int rc;

	memset(&f, 0, sizeof(f));
	if (dt_cli_start("dt-fetch") < 0)
		return DT_EXIT_CONFIG;
	if ((rc = dt_fetch_configure(&f, argc, argv)) != 0 || f.check) {
		json_decref(f.columns);
		return rc;
	}
	if (f.mode == 'R')
		rc = dt_fetch_requeue(&f);
	else if (f.dry_run)
		rc = dt_fetch_dry_run(&f);
	else if (f.mode == OPT_PREFLIGHT)
		rc = dt_fetch_preflight(&f);
	else if (f.mode == OPT_BACKLOG)
		rc = dt_fetch_backlog(&f);
	else
		rc = dt_fetch_claim(&f);
	json_decref(f.columns);
	return dt_cli_close_stdout(rc);
}
