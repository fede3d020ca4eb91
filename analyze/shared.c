/*
 * shared.c: the state the dt-analyze workers of one run share; see
 * shared.h.  Every read and change is made under the file's flock(2).
 */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "shared.h"

#define STATE_MAGIC 0x64747361u /* "dtsa" */
#define STATE_VERSION 2

struct state {
	uint32_t magic;
	uint32_t version;
	int64_t rpm;
	int64_t window_ms;
	int64_t hold_until;     /* no slot before this time */
	int64_t next;           /* slots handed out so far */
	int64_t breaker_fails;  /* consecutive outage failures */
	int32_t breaker;        /* DT_BREAKER_* */
	int32_t warm;           /* a call has succeeded */
	int32_t warm_tried;     /* the warm-up call has been made */
	int32_t warm_pid;       /* the worker making it */
	int64_t warm_until;     /* its lease */
	double spent;
	double reserved;
	double max_cost;
	int64_t setup_streak;   /* consecutive answers like setup_sig */
	int32_t proven;         /* some call got an analysis */
	int32_t pad;
	char setup_sig[64];     /* "status type" of the last of them */
	char why[DT_SHARED_WHY]; /* why the breaker opened */
	int64_t ring[];         /* the times of the last rpm slots */
};

struct dt_shared {
	int fd;
	int call_fd;            /* the call slot held, or -1 */
	char dir[4096];
	struct state *st;
	size_t size;
};

static struct state *
lock(struct dt_shared *s)
{
	while (flock(s->fd, LOCK_EX) < 0 && errno == EINTR)
		;
	return s->st;
}

static void
unlock(struct dt_shared *s)
{
	flock(s->fd, LOCK_UN);
}

/* Maps the locked file at path, sized for rpm; NULL after err. */
static struct state *
map_state(struct dt_shared *s, const char *path, long long rpm,
    long long window_ms, char *err, size_t errlen)
{
	size_t size = sizeof(struct state) + (size_t)rpm * sizeof(int64_t);
	struct stat sb;
	struct state *st;
	void *p;

	if (fstat(s->fd, &sb) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (sb.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by another user", path);
		return NULL;
	}
	if (sb.st_size == 0 && ftruncate(s->fd, (off_t)size) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	} else if (sb.st_size != 0 && (size_t)sb.st_size != size) {
		snprintf(err, errlen, "%s: made by a worker with another "
		    "DT_RPM; all workers of a run must share one configuration",
		    path);
		return NULL;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	s->st = st = p;
	s->size = size;
	if (st->magic == 0) {
		st->magic = STATE_MAGIC;
		st->version = STATE_VERSION;
		st->rpm = rpm;
		st->window_ms = window_ms;
	} else if (st->magic != STATE_MAGIC || st->version != STATE_VERSION ||
	    st->rpm != rpm || st->window_ms != window_ms) {
		snprintf(err, errlen, "%s: made by a worker with another "
		    "DT_RPM or DT_RPM_WINDOW_MS; all workers of a run must "
		    "share one configuration", path);
		return NULL;
	}
	return st;
}

struct dt_shared *
dt_shared_open(const char *dir, long long rpm, long long window_ms, char *err,
    size_t errlen)
{
	struct dt_shared *s;
	char path[4200];
	struct state *st;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->call_fd = -1;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/analyze.state", dir);
	if ((s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		dt_shared_close(s);
		return NULL;
	}
	lock(s);
	st = map_state(s, path, rpm, window_ms, err, errlen);
	unlock(s);
	if (st == NULL) {
		dt_shared_close(s);
		return NULL;
	}
	return s;
}

void
dt_shared_close(struct dt_shared *s)
{
	if (s != NULL && s->st != NULL)
		munmap(s->st, s->size);
	/* The call slot's lock goes with its descriptor. */
	if (s != NULL && s->call_fd >= 0)
		close(s->call_fd);
	if (s != NULL && s->fd >= 0)
		close(s->fd);
	free(s);
}

long long
dt_shared_slot(struct dt_shared *s)
{
	struct state *st = lock(s);
	long long now = dt_now_ms(), slot, margin;
	int64_t i;

	slot = now > st->hold_until ? now : st->hold_until;
	if (st->rpm > 0) {
		i = st->next % st->rpm;
		/*
		 * The slot rpm places back must be a whole window (plus a
		 * margin for the time a request takes to reach the server)
		 * older than this one, so no window ever holds more than rpm.
		 */
		margin = st->window_ms / 20 < 1000 ? st->window_ms / 20 : 1000;
		if (st->next >= st->rpm &&
		    st->ring[i] + st->window_ms + margin > slot)
			slot = st->ring[i] + st->window_ms + margin;
		/* Taken only when due, stamped with the time it is taken. */
		if (slot <= now) {
			st->ring[i] = now;
			st->next++;
		}
	}
	unlock(s);
	return slot - now;
}

void
dt_shared_hold(struct dt_shared *s, long long ms)
{
	struct state *st = lock(s);
	long long until = dt_now_ms() + ms;

	if (until > st->hold_until)
		st->hold_until = until;
	unlock(s);
}

int
dt_shared_budget_take(struct dt_shared *s, double budget, double *reserved)
{
	struct state *st;
	int ok = 1;

	*reserved = 0;
	if (budget <= 0)
		return 1;
	st = lock(s);
	if (st->spent + st->reserved >= budget ||
	    st->spent + st->reserved + st->max_cost > budget)
		ok = 0;
	else {
		*reserved = st->max_cost;
		st->reserved += st->max_cost;
	}
	unlock(s);
	return ok;
}

void
dt_shared_budget_settle(struct dt_shared *s, double budget, double reserved,
    double cost)
{
	struct state *st;

	/* Without a budget nothing was reserved and spending is not kept. */
	if (budget <= 0)
		return;
	st = lock(s);
	st->reserved -= reserved;
	if (st->reserved < 0)
		st->reserved = 0;
	st->spent += cost;
	if (cost > st->max_cost)
		st->max_cost = cost;
	unlock(s);
}

/* Reads one field of the state under the lock. */
static int
get(struct dt_shared *s, const int32_t *field)
{
	int v;

	lock(s);
	v = *field;
	unlock(s);
	return v;
}

int
dt_shared_breaker(struct dt_shared *s)
{
	return get(s, &s->st->breaker);
}

int
dt_shared_setup_proven(struct dt_shared *s)
{
	return get(s, &s->st->proven);
}

int
dt_shared_breaker_note(struct dt_shared *s, int outage, long long threshold)
{
	struct state *st = lock(s);
	int v;

	if (!outage)
		st->breaker_fails = 0;
	else if (++st->breaker_fails >= threshold && threshold > 0 &&
	    st->breaker == DT_BREAKER_CLOSED)
		st->breaker = DT_BREAKER_OUTAGE;
	v = st->breaker;
	unlock(s);
	return v;
}

/* Opens the breaker under the lock; returns 1 when this call opened it. */
static int
trip_locked(struct state *st, int reason, const char *why)
{
	if (st->breaker != DT_BREAKER_CLOSED)
		return 0;
	snprintf(st->why, sizeof(st->why), "%s", why != NULL ? why : "");
	st->breaker = reason;
	return 1;
}

int
dt_shared_breaker_trip(struct dt_shared *s, int reason, const char *why)
{
	int v = trip_locked(lock(s), reason, why);

	unlock(s);
	return v;
}

void
dt_shared_breaker_why(struct dt_shared *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s", lock(s)->why);
	unlock(s);
}

void
dt_shared_setup_ok(struct dt_shared *s, int analyzed)
{
	struct state *st = lock(s);

	st->setup_streak = 0;
	st->proven = st->proven || analyzed;
	unlock(s);
}

int
dt_shared_setup_note(struct dt_shared *s, long status, const char *sig,
    long long threshold, const char *why, int *streak)
{
	char key[sizeof(s->st->setup_sig)];
	struct state *st;
	int v = 0;

	snprintf(key, sizeof(key), "%ld %s", status, sig != NULL ? sig : "");
	st = lock(s);
	if (st->setup_streak > 0 && strcmp(st->setup_sig, key) == 0)
		st->setup_streak++;
	else {
		st->setup_streak = 1;
		memcpy(st->setup_sig, key, sizeof(key));
	}
	*streak = (int)st->setup_streak;
	if (st->setup_streak >= threshold)
		v = trip_locked(st, DT_BREAKER_SETUP, why);
	unlock(s);
	return v;
}

int
dt_shared_warm(struct dt_shared *s, long long lease_ms, int *warm)
{
	struct state *st = lock(s);
	long long now = dt_now_ms();
	int v;

	*warm = st->warm;
	if (st->warm || st->warm_tried)
		v = DT_WARM_GO;
	else if (st->warm_pid != 0 && st->warm_until > now &&
	    (kill(st->warm_pid, 0) == 0 || errno != ESRCH))
		v = DT_WARM_WAIT;
	else {
		st->warm_pid = (int32_t)getpid();
		st->warm_until = now + lease_ms;
		v = DT_WARM_LEAD;
	}
	unlock(s);
	return v;
}

void
dt_shared_warm_done(struct dt_shared *s, int how)
{
	struct state *st = lock(s);

	st->warm_pid = 0;
	if (how != DT_WARM_AGAIN)
		st->warm_tried = 1;
	if (how == DT_WARM_OK)
		st->warm = 1;
	unlock(s);
}

int
dt_shared_call_slot(struct dt_shared *s, int slots, int (*stop)(void *),
    void *arg, char *err, size_t errlen)
{
	char path[4200];
	int i, fd;

	if (s->call_fd >= 0)
		return 1;
	for (;;) {
		for (i = 0; i < slots; i++) {
			snprintf(path, sizeof(path), "%s/call.%d", s->dir, i);
			if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
			    O_NOFOLLOW, 0600)) < 0) {
				snprintf(err, errlen, "%s: %s", path,
				    strerror(errno));
				return -1;
			}
			if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
				s->call_fd = fd;
				return 1;
			}
			close(fd);
		}
		if (stop(arg))
			return 0;
		dt_sleep_ms(2);
	}
}
