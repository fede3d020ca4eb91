/*
 * ndjson.c: streaming NDJSON reader and writer.
 *
 * The reader buffers read(2) itself, so that it can tell whether a line
 * is already buffered (dt_reader_wait) and skip a line over the limit
 * without ever holding it whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "utf8.h"

struct dt_reader {
	char **paths;
	int npaths, next;       /* the files, and the index of the next */
	int fd;                 /* -1 when none is open */
	const char *name;       /* the open file's name in messages */
	size_t max_line;
	char in[64 * 1024];     /* read(2)'s bytes; in[pos..len) unread */
	size_t pos, len;
	unsigned long lineno;
	char where[512], error[256];
	size_t line_len;
	char line[];            /* the current line, max_line + 1 bytes */
};

struct dt_reader *
dt_reader_new(char **paths, int n, size_t max_line)
{
	struct dt_reader *r;

	max_line = max_line ? max_line : DT_NDJSON_MAX_LINE_DEFAULT;
	if ((r = malloc(sizeof(*r) + max_line + 1)) == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->paths = paths;
	r->npaths = n;
	r->fd = -1;
	r->max_line = max_line;
	return r;
}

void
dt_reader_free(struct dt_reader *r)
{
	if (r != NULL && r->fd > STDIN_FILENO)
		close(r->fd);
	free(r);
}

/* Opens the next input.  Returns 1, 0 at the end, or -1 (logged). */
static int
open_next(struct dt_reader *r)
{
	const char *path;

	if (r->next >= (r->npaths > 0 ? r->npaths : 1))
		return 0;
	path = r->npaths > 0 ? r->paths[r->next] : "-";
	r->next++;
	r->lineno = 0;
	r->pos = r->len = 0;
	r->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	if (strcmp(path, "-") == 0)
		r->fd = STDIN_FILENO;
	else if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(r->where, sizeof(r->where), "%s", path);
		dt_error("%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

/*
 * Reads one line into r->line, only its first max_line bytes when it
 * is longer (*toolong).  Returns 1, 0 at the end of the input, -1 after
 * a read error (logged).
 */
static int
read_line(struct dt_reader *r, int *toolong)
{
	const char *p, *nl;
	size_t n;
	ssize_t got;
	int any = 0;

	r->line_len = 0;
	*toolong = 0;
	for (;;) {
		if (r->pos == r->len) {
			do
				got = read(r->fd, r->in, sizeof(r->in));
			while (got < 0 && errno == EINTR);
			if (got < 0)
				dt_error("%s: %s", r->name, strerror(errno));
			if (got <= 0)
				return got < 0 ? -1 : any;
			r->pos = 0;
			r->len = (size_t)got;
		}
		/* The buffer up to a newline, copied as far as it fits. */
		any = 1;
		p = r->in + r->pos;
		nl = memchr(p, '\n', r->len - r->pos);
		n = nl != NULL ? (size_t)(nl - p) : r->len - r->pos;
		r->pos += n + (nl != NULL);
		if (n > r->max_line - r->line_len) {
			*toolong = 1;
			n = r->max_line - r->line_len;
		}
		memcpy(r->line + r->line_len, p, n);
		r->line_len += n;
		if (nl != NULL)
			return 1;
	}
}

/* Logs the current line as bad, and makes its error record. */
static int __attribute__((format(printf, 3, 4)))
bad(struct dt_reader *r, json_t **rec, const char *fmt, ...)
{
	va_list ap;
	char *excerpt;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	/* Jansson's error text may quote a character cut in two. */
	utf8_fix(r->error);
	dt_warn("%s: %s", r->where, r->error);
	excerpt = utf8_dup(r->line, r->line_len, 256);
	*rec = excerpt == NULL ? NULL : json_pack("{s:{s:s, s:s, s:b}, "
	    "s:{s:s, s:s}}", "error", "kind", "bad_record", "message",
	    r->error, "retryable", 0, "input", "where", r->where, "excerpt",
	    excerpt);
	free(excerpt);
	return DT_NDJSON_BAD;
}

int
dt_reader_next(struct dt_reader *r, json_t **rec)
{
	static const char *const got[] = {[JSON_ARRAY] = "an array",
	    [JSON_STRING] = "a string", [JSON_INTEGER] = "a number",
	    [JSON_REAL] = "a number", [JSON_TRUE] = "a boolean",
	    [JSON_FALSE] = "a boolean", [JSON_NULL] = "null"};
	json_error_t jerr;
	size_t off;
	int toolong, rc;

	*rec = NULL;
	r->error[0] = '\0';
	for (;;) {
		if (r->fd < 0 && (rc = open_next(r)) <= 0)
			return rc == 0 ? DT_NDJSON_EOF : DT_NDJSON_ERROR;
		if ((rc = read_line(r, &toolong)) <= 0) {
			if (r->fd > STDIN_FILENO)
				close(r->fd);
			r->fd = -1;
			if (rc < 0)
				return DT_NDJSON_ERROR;
			continue;
		}
		snprintf(r->where, sizeof(r->where), "%s:%lu", r->name,
		    ++r->lineno);
		if (r->lineno == 1 && r->line_len >= 3 &&
		    memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
			r->line_len -= 3;
			memmove(r->line, r->line + 3, r->line_len);
		}
		if (toolong)
			return bad(r, rec, "line too long (limit %zu bytes)",
			    r->max_line);
		r->line[r->line_len] = '\0';
		if (strspn(r->line, " \t\r") < r->line_len)
			break;
	}
	if ((off = utf8_cut(r->line, r->line_len, r->line_len)) !=
	    r->line_len)
		return bad(r, rec, "not valid UTF-8 (byte %zu)", off + 1);
	*rec = json_loadb(r->line, r->line_len, JSON_ALLOW_NUL |
	    JSON_DECODE_ANY, &jerr);
	if (*rec == NULL)
		return bad(r, rec, "invalid JSON: %s (column %d)", jerr.text,
		    jerr.column);
	if (json_is_object(*rec))
		return DT_NDJSON_RECORD;
	rc = json_typeof(*rec);
	json_decref(*rec);
	return bad(r, rec, "not a JSON object (got %s)", got[rc]);
}

int
dt_reader_wait(struct dt_reader *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	int n;

	if (r->fd < 0 || r->pos < r->len)
		return 1;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n != 0;
}

const char *
dt_reader_where(const struct dt_reader *r)
{
	return r->where;
}

const char *
dt_reader_error(const struct dt_reader *r)
{
	return r->error;
}

static int out_status;

void
dt_out_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

int
dt_out_status(void)
{
	return out_status;
}

int
dt_emit(json_t *rec)
{
	char *s;
	size_t len;

	if (out_status != 0)
		return -1;
	if ((s = json_dumps(rec, DT_LINE_FLAGS)) == NULL) {
		dt_error("cannot encode a record (out of memory)");
		out_status = DT_EXIT_IOERR;
		return -1;
	}
	/* The newline in the same write(2): a line is never split. */
	len = strlen(s);
	s[len++] = '\n';
	if (dt_write_all(STDOUT_FILENO, s, len) < 0) {
		if (errno == EPIPE)
			out_status = DT_EXIT_PIPE;
		else {
			dt_error("cannot write standard output: %s",
			    strerror(errno));
			out_status = DT_EXIT_IOERR;
		}
	}
	free(s);
	return out_status != 0 ? -1 : 0;
}
