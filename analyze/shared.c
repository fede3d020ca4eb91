/*
 * shared.c: the state the dt-analyze workers of one run share; see
 * shared.h.
 */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "shared.h"

#define STATE_MAGIC 0x64747361u /* "dtsa" */
#define STATE_VERSION 3

/* The file: what call.c changes, then the rate window's ring. */
struct file {
	uint32_t magic, version;
	int64_t rpm, window_ms;
	int64_t next;           /* slots handed out so far */
	struct dt_state st;
	int64_t ring[];         /* the times of the last rpm slots */
};

struct dt_shared {
	int fd;
	int call_fd;            /* the call slot held, or -1 */
	char dir[4096];
	struct file *f;
	size_t size;
};

struct dt_shared *
dt_shared_open(const char *dir, long long rpm, long long window_ms, char *err,
    size_t errlen)
{
	size_t size = sizeof(struct file) + (size_t)rpm * sizeof(int64_t);
	struct file want = {STATE_MAGIC, STATE_VERSION, rpm, window_ms, 0,
	    {0}};
	struct dt_shared *s = calloc(1, sizeof(*s));
	char path[4200];
	struct stat sb;
	int ok = 0;
	void *p;

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->call_fd = -1;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/analyze.state", dir);
	/* Made and checked under the lock: the first worker makes it. */
	if ((s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) >= 0)
		dt_shared_lock(s);
	if (s->fd < 0 || fstat(s->fd, &sb) < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else if (sb.st_uid != geteuid())
		snprintf(err, errlen, "%s: owned by another user", path);
	else if ((sb.st_size == 0 && ftruncate(s->fd, (off_t)size) < 0) ||
	    (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
	    0)) == MAP_FAILED)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else {
		s->f = p;
		s->size = size;
		if (sb.st_size == 0)
			*s->f = want;
		ok = (sb.st_size == 0 || (size_t)sb.st_size == size) &&
		    memcmp(s->f, &want, offsetof(struct file, next)) == 0;
		if (!ok)
			snprintf(err, errlen, "%s: made by a worker with "
			    "another DT_RPM or DT_RPM_WINDOW_MS; all workers "
			    "of a run must share one configuration", path);
	}
	if (s->fd >= 0)
		dt_shared_unlock(s);
	if (ok)
		return s;
	dt_shared_close(s);
	return NULL;
}

void
dt_shared_close(struct dt_shared *s)
{
	if (s != NULL && s->f != NULL)
		munmap(s->f, s->size);
	/* The call slot's lock goes with its descriptor. */
	if (s != NULL && s->call_fd >= 0)
		close(s->call_fd);
	if (s != NULL && s->fd >= 0)
		close(s->fd);
	free(s);
}

struct dt_state *
dt_shared_lock(struct dt_shared *s)
{
	while (flock(s->fd, LOCK_EX) < 0 && errno == EINTR)
		;
	return s->f != NULL ? &s->f->st : NULL;
}

void
dt_shared_unlock(struct dt_shared *s)
{
	flock(s->fd, LOCK_UN);
}

int
dt_shared_breaker(struct dt_shared *s)
{
	int v = dt_shared_lock(s)->breaker;

	dt_shared_unlock(s);
	return v;
}

long long
dt_shared_slot(struct dt_shared *s)
{
	struct file *f = s->f;
	long long now = dt_now_ms(), slot, margin;
	int64_t i;

	dt_shared_lock(s);
	slot = now > f->st.hold_until ? now : f->st.hold_until;
	if (f->rpm > 0) {
		i = f->next % f->rpm;
		/*
		 * The slot rpm places back must be a whole window (plus a
		 * margin for the time a request takes to reach the server)
		 * older than this one, so no window ever holds more than rpm.
		 */
		margin = f->window_ms / 20 < 1000 ? f->window_ms / 20 : 1000;
		if (f->next >= f->rpm && f->ring[i] + f->window_ms + margin >
		    slot)
			slot = f->ring[i] + f->window_ms + margin;
		/* Taken only when due, stamped with the time it is taken. */
		if (slot <= now) {
			f->ring[i] = now;
			f->next++;
		}
	}
	dt_shared_unlock(s);
	return slot - now;
}

int
dt_shared_call_slot(struct dt_shared *s, int slots, int (*stop)(void *),
    void *arg, char *err, size_t errlen)
{
	char path[4200];
	int i, fd;

	while (s->call_fd < 0) {
		for (i = 0; i < slots && s->call_fd < 0; i++) {
			snprintf(path, sizeof(path), "%s/call.%d", s->dir, i);
			if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
			    O_NOFOLLOW, 0600)) < 0) {
				snprintf(err, errlen, "%s: %s", path,
				    strerror(errno));
				return -1;
			}
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				s->call_fd = fd;
			else
				close(fd);
		}
		if (s->call_fd < 0 && stop(arg))
			return 0;
		if (s->call_fd < 0)
			dt_sleep_ms(2);
	}
	return 1;
}
