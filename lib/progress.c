/*
 * progress.c: dt-store's progress lines (see progress.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "log.h"
#include "progress.h"

/* Writes DT_STATE_DIR/fetch.claimed into path; returns 0, -1 unset. */
static int
claimed_path(char *path, size_t len)
{
	const char *dir = dt_env("DT_STATE_DIR", NULL);

	if (dir != NULL)
		snprintf(path, len, "%s/fetch.claimed", dir);
	return dir != NULL ? 0 : -1;
}

int
dt_progress_init(struct dt_progress *p)
{
	const char *s = dt_env("DT_RUN_STARTED_AT", NULL), *end;
	long long every = 0, deadline = 0;
	struct tm tm = {0};
	int bad = 0;

	memset(p, 0, sizeof(*p));
	bad += dt_env_shared("DT_PROGRESS_SECONDS", &every) < 0;
	bad += dt_env_shared("DT_MAX_RECORDS", &p->max_records) < 0;
	bad += dt_env_shared("DT_DEADLINE_SECONDS", &deadline) < 0;
	p->every_ms = every * 1000;
	p->start_ms = dt_now_ms();
	p->next_ms = p->start_ms + p->every_ms;
	/* "2026-12-01T22:00:00Z", as dt-entrypoint writes it. */
	if (s != NULL && (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) !=
	    NULL && (*end == 'Z' || *end == '\0'))
		p->deadline = (double)timegm(&tm) + (double)deadline;
	return bad;
}

long long
dt_progress_wait_ms(const struct dt_progress *p)
{
	long long left = p->next_ms - dt_now_ms();

	return p->every_ms <= 0 ? -1 : left > 0 ? left : 0;
}

void
dt_progress_add(struct dt_progress *p, json_t *rec)
{
	json_t *c = json_object_get(json_object_get(rec, "usage"), "cost_usd");

	if (json_is_number(c) && json_number_value(c) > 0)
		p->cost += json_number_value(c);
}

/* "45 s", "12 min", "3.5 h" into buf. */
static const char *
duration(double s, char *buf, size_t len)
{
	if (s < 90)
		snprintf(buf, len, "%.0f s", s);
	else if (s < 5400)
		snprintf(buf, len, "%.0f min", s / 60);
	else
		snprintf(buf, len, "%.1f h", s / 3600);
	return buf;
}

void
dt_progress_tick(struct dt_progress *p, long long done, long long failed,
    long long skipped)
{
	long long now = dt_now_ms(), handled = done + failed + skipped;
	long long claimed = 0, total = -1;
	double minutes, rate, left = -1, until_stop = -1;
	char what[160], d[32], path[4200];
	int finished = 0;
	FILE *f;

	if (p->every_ms <= 0 || now < p->next_ms)
		return;
	while (p->next_ms <= now)
		p->next_ms += p->every_ms;
	minutes = (double)(now - p->start_ms) / 60000.0;
	rate = minutes > 0 ? (double)handled / minutes : 0;
	if (claimed_path(path, sizeof(path)) == 0 &&
	    (f = fopen(path, "re")) != NULL) {
		if (fscanf(f, "%lld %d", &claimed, &finished) != 2 ||
		    claimed < 0)
			claimed = finished = 0;
		else if (finished || p->max_records > 0)
			total = finished || claimed > p->max_records ?
			    claimed : p->max_records;
		fclose(f);
	}
	if (p->deadline > 0)
		until_stop = p->deadline - (double)time(NULL);
	if (total >= 0 && rate > 0)
		left = (double)(total > handled ? total - handled : 0) / rate *
		    60;
	if (until_stop >= 0 && (left < 0 || left > until_stop))
		snprintf(what, sizeof(what), "at most %s left (the deadline)",
		    duration(until_stop, d, sizeof(d)));
	else if (left >= 0)
		snprintf(what, sizeof(what), "about %s left (%lld of %s%lld "
		    "rows)", duration(left, d, sizeof(d)), handled, finished ?
		    "" : "at most ", total);
	else
		snprintf(what, sizeof(what), "time left unknown (%lld rows "
		    "claimed so far)", claimed);
	dt_info("progress: %lld done, %lld failed, %lld skipped in %.1f min "
	    "(%.1f a minute); %.4f USD so far; %s", done, failed, skipped,
	    minutes, rate, p->cost, what);
}

void
dt_progress_note_claimed(long long rows, int finished)
{
	char path[4200], tmp[4300];
	FILE *f;

	if (claimed_path(path, sizeof(path)) < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "we")) == NULL) {
		dt_debug("%s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "%lld %d\n", rows, finished);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		dt_debug("%s: %s", path, strerror(errno));
		unlink(tmp);
	}
}
