/*
 * stages.c: --merge-stages, the one stage record of a fan-out's run
 * made from the stage records its short-lived workers left in a
 * directory (dt_az_open_stage_file).
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

/* Adds the numbers of from's member key into to's (max: the larger). */
static void
add_number(json_t *to, json_t *from, const char *key, int max)
{
	json_t *a = json_object_get(to, key), *b = json_object_get(from, key);
	double v;

	if (!json_is_number(b))
		return;
	if (!json_is_number(a)) {
		json_object_set(to, key, b);
		return;
	}
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);

		json_object_set_new(to, key, json_integer(max ? (x > y ? x : y) :
		    x + y));
		return;
	}
	v = max ? (json_number_value(a) > json_number_value(b) ?
	    json_number_value(a) : json_number_value(b)) :
	    json_number_value(a) + json_number_value(b);
	json_object_set_new(to, key, json_real(v));
}

/* Adds every number among from's member key's members into to's. */
static void
add_members(json_t *to, json_t *from, const char *key)
{
	json_t *t = json_object_get(to, key), *f = json_object_get(from, key);
	const char *k;
	json_t *v;

	if (!json_is_object(f))
		return;
	if (!json_is_object(t)) {
		json_object_set_new(to, key, json_deep_copy(f));
		return;
	}
	json_object_foreach(f, k, v)
		add_number(t, f, k, strcmp(k, "maxrss_kb") == 0);
}

/* Adds the stage record rec into sum (a new reference once set). */
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
	add_members(s, rec, "counts");
	add_number(s, rec, "tokens", 0);
	add_number(s, rec, "cost_usd", 0);
	add_members(s, rec, "estimate");
	add_members(s, rec, "resources");
	if (json_is_true(json_object_get(rec, "interrupted")))
		json_object_set_new(s, "interrupted", json_true());
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
	char buf[1024];
	unsigned long k;
	char *tab;
	FILE *f;
	size_t got;

	if ((f = fopen(path, "re")) == NULL)
		return;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	if ((tab = strchr(buf, '\t')) == NULL)
		return;
	k = strtoul(buf, NULL, 10);
	*n += k;
	snprintf(last, len, "%s", tab + 1);
}

int
dt_az_merge_stages(const char *dir, struct dt_shared *sh)
{
	unsigned long refused = 0;
	char last[1024] = "";
	struct dirent **names = NULL;
	json_t *sum = NULL;
	char path[4096];
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
	/* As dt-analyze alone says it at its end (dt_az_end_of_run). */
	if (refused > 0 && (sh == NULL ||
	    dt_shared_breaker(sh) == DT_BREAKER_CLOSED))
		dt_az_say_refused(refused, last);
	if (sum == NULL)
		return DT_EXIT_OK;
	dt_emit(sum);
	json_decref(sum);
	return dt_out_status();
}
