/*
 * dt-fetch: claims unanalyzed rows of the bot's table through Supabase's
 * data API (dt_claim) and writes them as NDJSON source records, batch by
 * batch, then the stage record, also when Supabase cannot be reached.
 * --peek reads what a claim would get; --requeue returns parked rows to
 * the queue.  See docs/supabase.md; the files are named in fetch.h.
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
