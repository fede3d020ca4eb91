/*
 * stages.c: --merge-stages, the one stage record of a fan-out's run made
 * from the stage records its short-lived workers left in a directory.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analyze.h"
#include "exit.h"
#include "log.h"
#include "shared.h"

/*
 * Adds the numbers among from's members into to's, member objects
 * member by member, the largest of "maxrss_kb"; a member to lacks is
 * copied.  At the top (top) the status is left to merge().
 */
static void
add(json_t *to, json_t *from, int top)
{
	json_t *v, *t;
	const char *k;
	double a, b, r;

	json_object_foreach(from, k, v) {
		t = json_object_get(to, k);
		a = json_number_value(t);
		b = json_number_value(v);
		r = strcmp(k, "maxrss_kb") == 0 ? (a > b ? a : b) : a + b;
		if (top && strcmp(k, "status") == 0)
			continue;
		if (json_is_object(t) && json_is_object(v))
			add(t, v, 0);
		else if (json_is_number(t) && json_is_number(v))
			json_object_set_new(to, k, json_is_integer(t) &&
			    json_is_integer(v) ? json_integer((json_int_t)r) :
			    json_real(r));
		else if (t == NULL)
			json_object_set(to, k, v);
	}
}

/* Adds the stage record rec into *sum (a new reference once set). */
static void
merge(json_t **sum, json_t *rec)
{
	json_t *s = *sum;
	int a, b;

	if (s == NULL) {
		*sum = json_deep_copy(rec);
		return;
	}
	a = (int)json_integer_value(json_object_get(s, "status"));
	b = (int)json_integer_value(json_object_get(rec, "status"));
	/* The message goes with the most severe status. */
	if (dt_exit_worse(a, b) != a) {
		json_object_set(s, "status", json_object_get(rec, "status"));
		json_object_set(s, "message", json_object_get(rec, "message"));
	}
	if (json_is_null(json_object_get(s, "run_id")) &&
	    json_is_string(json_object_get(rec, "run_id")))
		json_object_set(s, "run_id", json_object_get(rec, "run_id"));
	if (json_is_true(json_object_get(rec, "interrupted")))
		json_object_set_new(s, "interrupted", json_true());
	add(s, rec, 1);
}

/* Reads the stage record in path into *sum; an empty file is no record. */
static void
merge_file(json_t **sum, const char *path)
{
	json_error_t e;
	json_t *rec;
	FILE *f;
	int c;

	if ((f = fopen(path, "re")) == NULL) {
		dt_warn("%s: %s; left out of the stage record", path,
		    strerror(errno));
		return;
	}
	/* A worker that stopped before its stage record left none. */
	if ((c = getc(f)) == EOF) {
		fclose(f);
		return;
	}
	ungetc(c, f);
	rec = json_loadf(f, 0, &e);
	fclose(f);
	if (rec == NULL || !json_is_object(rec) ||
	    !json_is_string(json_object_get(rec, "stage")) ||
	    !json_is_integer(json_object_get(rec, "status")))
		dt_warn("%s: not a stage record (%s); left out of the stage "
		    "record", path, rec == NULL ? e.text : "no stage or status");
	else
		merge(sum, rec);
	json_decref(rec);
}

/* Adds the "refused.*" file path ("<n>\t<last>") into *n and last. */
static void
add_refused(const char *path, unsigned long *n, char *last, size_t len)
{
	char buf[1024], *tab;
	FILE *f;
	size_t got;

	if ((f = fopen(path, "re")) == NULL)
		return;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	if ((tab = strchr(buf, '\t')) == NULL)
		return;
	*n += strtoul(buf, NULL, 10);
	snprintf(last, len, "%s", tab + 1);
}

int
dt_az_merge_stages(const char *dir, struct dt_shared *sh)
{
	unsigned long refused = 0;
	char last[1024] = "", path[4096];
	struct dirent **names = NULL;
	json_t *sum = NULL;
	int i, n;

	if ((n = scandir(dir, &names, NULL, alphasort)) < 0) {
		dt_error("%s: %s", dir, strerror(errno));
		return DT_EXIT_IOERR;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (strncmp(names[i]->d_name, "stage.", 6) == 0)
			merge_file(&sum, path);
		else if (strncmp(names[i]->d_name, "refused.", 8) == 0)
			add_refused(path, &refused, last, sizeof(last));
		free(names[i]);
	}
	free(names);
	if (refused > 0 && (sh == NULL ||
	    dt_shared_breaker(sh) == DT_BREAKER_CLOSED))
		dt_az_say_refused(refused, last);
	if (sum == NULL)
		return DT_EXIT_OK;
	dt_emit(sum);
	json_decref(sum);
	return dt_out_status();
}
