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

#define EXCERPT_BYTES 256

struct dt_reader {
	char **paths;
	int npaths, next;       /* the files, and the index of the next */
	int fd;                 /* -1 when none is open */
	const char *name;       /* the open file's name in messages */
	int eof;                /* the open file reached its end */
	size_t max_line;
	char in[64 * 1024];     /* read(2)'s bytes; in[pos..len) unread */
	size_t pos, len;
	char *line;             /* the current line, max_line + 1 bytes */
	size_t line_len;
	unsigned long lineno, nrecords, nbad, nfail;
	char where[512], error[256];
	char *excerpt;
};

struct dt_reader *
dt_reader_new(char **paths, int n, size_t max_line)
{
	struct dt_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->paths = paths;
	r->npaths = n;
	r->fd = -1;
	r->max_line = max_line ? max_line : DT_NDJSON_MAX_LINE_DEFAULT;
	if ((r->line = malloc(r->max_line + 1)) == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void
dt_reader_free(struct dt_reader *r)
{
	if (r == NULL)
		return;
	if (r->fd > STDIN_FILENO)
		close(r->fd);
	free(r->line);
	free(r->excerpt);
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
	r->eof = 0;
	r->pos = r->len = 0;
	if (strcmp(path, "-") == 0) {
		r->fd = STDIN_FILENO;
		r->name = "<stdin>";
		return 1;
	}
	r->name = path;
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(r->where, sizeof(r->where), "%s", path);
		dt_error("%s: %s", path, strerror(errno));
		r->nfail++;
		return -1;
	}
	return 1;
}

/* The open input's next byte, -1 at its end, -2 after a read error. */
static int
next_byte(struct dt_reader *r)
{
	ssize_t n;

	if (r->pos == r->len) {
		if (r->eof)
			return -1;
		do
			n = read(r->fd, r->in, sizeof(r->in));
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			dt_error("%s: %s", r->name, strerror(errno));
			r->nfail++;
			return -2;
		}
		r->pos = 0;
		r->len = (size_t)n;
		if (n == 0) {
			r->eof = 1;
			return -1;
		}
	}
	return (unsigned char)r->in[r->pos++];
}

/*
 * Reads one line into r->line, only its first max_line bytes when it
 * is longer (*toolong).  Returns 1, 0 at the end of the input, -1 after
 * a read error.
 */
static int
read_line(struct dt_reader *r, int *toolong)
{
	int c, got = 0;

	r->line_len = 0;
	*toolong = 0;
	while ((c = next_byte(r)) >= 0) {
		/* That byte and the rest of the buffer, up to a newline. */
		const char *p = r->in + r->pos - 1;
		const char *nl = memchr(p, '\n', r->len - r->pos + 1);
		size_t n = nl != NULL ? (size_t)(nl - p) : r->len - r->pos + 1;

		got = 1;
		r->pos += n - (nl == NULL);
		if (n > r->max_line - r->line_len) {
			*toolong = 1;
			n = r->max_line - r->line_len;
		}
		memcpy(r->line + r->line_len, p, n);
		r->line_len += n;
		if (nl != NULL)
			return 1;
	}
	return c == -1 ? got : -1;
}

static int
bad(struct dt_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logs and counts the current line as bad; returns DT_NDJSON_BAD. */
static int
bad(struct dt_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	/* Jansson's error text may quote a character cut in two. */
	utf8_fix(r->error);
	r->excerpt = utf8_dup(r->line, r->line_len, EXCERPT_BYTES);
	r->nbad++;
	dt_warn("%s: %s", r->where, r->error);
	return DT_NDJSON_BAD;
}

/*
 * Reads the next line that is not blank into r->line.  Returns
 * DT_NDJSON_RECORD, or DT_NDJSON_BAD for a line too long,
 * DT_NDJSON_EOF or DT_NDJSON_ERROR.
 */
static int
next_line(struct dt_reader *r)
{
	int toolong, rc;

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
		/* A byte order mark (Windows editors) opens an input. */
		if (r->lineno == 1 && r->line_len >= 3 &&
		    memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
			r->line_len -= 3;
			memmove(r->line, r->line + 3, r->line_len);
		}
		if (toolong)
			return bad(r, "line too long (limit %zu bytes)",
			    r->max_line);
		r->line[r->line_len] = '\0';
		if (strspn(r->line, " \t\r") < r->line_len)
			return DT_NDJSON_RECORD;
	}
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
	int rc;

	*rec = NULL;
	r->error[0] = '\0';
	free(r->excerpt);
	r->excerpt = NULL;
	if ((rc = next_line(r)) != DT_NDJSON_RECORD)
		return rc;
	if ((off = utf8_cut(r->line, r->line_len, r->line_len)) !=
	    r->line_len)
		return bad(r, "not valid UTF-8 (byte %zu)", off + 1);
	*rec = json_loadb(r->line, r->line_len, JSON_ALLOW_NUL |
	    JSON_DECODE_ANY, &jerr);
	if (*rec == NULL)
		return bad(r, "invalid JSON: %s (column %d)", jerr.text,
		    jerr.column);
	if (!json_is_object(*rec)) {
		rc = bad(r, "not a JSON object (got %s)",
		    got[json_typeof(*rec)]);
		json_decref(*rec);
		*rec = NULL;
		return rc;
	}
	r->nrecords++;
	return DT_NDJSON_RECORD;
}

int
dt_reader_wait(struct dt_reader *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	int n;

	if (r->fd < 0 || r->pos < r->len || r->eof)
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

const char *
dt_reader_excerpt(const struct dt_reader *r)
{
	return r->excerpt != NULL ? r->excerpt : "";
}

unsigned long
dt_reader_nrecords(const struct dt_reader *r)
{
	return r->nrecords;
}

unsigned long
dt_reader_nbad(const struct dt_reader *r)
{
	return r->nbad;
}

unsigned long
dt_reader_nfail(const struct dt_reader *r)
{
	return r->nfail;
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
