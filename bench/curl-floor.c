/*
 * curl-floor: what one API call costs in libcurl and the kernel alone,
 * for bench/analyze.sh to print beside dt-analyze's CPU per record.
 *
 *   curl-floor URL KEY BODY-FILE COUNT
 *
 * POSTs the body COUNT times over one kept-alive connection, setting up
 * the handle for every call the way lib/http.c does (reset, the same
 * options and headers, the answer gathered into a buffer), and doing
 * nothing else: no input to read, no answer to check, nothing to write.
 * Prints the user and system CPU time per call in microseconds, start-up
 * and the first call left out, as "USER SYS".
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct buf {
	char *s;
	size_t len, cap;
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t k = size * n;

	if (b->len + k > b->cap) {
		size_t cap = (b->len + k) * 2;
		char *s = realloc(b->s, cap);

		if (s == NULL)
			return 0;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, k);
	b->len += k;
	return k;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static double
cpu_us(int who_sys)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return who_sys ? ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec :
	    ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec;
}

static int
call(CURL *c, const char *url, const char *auth, const char *body,
    size_t len, struct buf *b)
{
	struct curl_slist *h = NULL;
	long status = 0;
	CURLcode cc;

	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	if (h == NULL)
		return -1;
	b->len = 0;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "dt/bench");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return cc == CURLE_OK && status == 200 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct buf b = {0};
	char auth[512], *body;
	double u0, s0;
	long n, i;
	size_t len;
	FILE *f;
	CURL *c;

	if (argc != 5 || (n = strtol(argv[4], NULL, 10)) < 1) {
		fprintf(stderr, "usage: curl-floor URL KEY BODY-FILE COUNT\n");
		return 64;
	}
	if ((f = fopen(argv[3], "rb")) == NULL || (body = malloc(1 << 20)) ==
	    NULL) {
		perror(argv[3]);
		return 66;
	}
	len = fread(body, 1, 1 << 20, f);
	fclose(f);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[2]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((c = curl_easy_init()) == NULL)
		return 70;
	/* The first call connects; the rest reuse the connection. */
	if (call(c, argv[1], auth, body, len, &b) < 0) {
		fprintf(stderr, "curl-floor: the first call failed\n");
		return 69;
	}
	u0 = cpu_us(0);
	s0 = cpu_us(1);
	for (i = 0; i < n; i++)
		if (call(c, argv[1], auth, body, len, &b) < 0) {
			fprintf(stderr, "curl-floor: call %ld failed\n", i + 1);
			return 69;
		}
	printf("%.1f %.1f\n", (cpu_us(0) - u0) / n, (cpu_us(1) - s0) / n);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	free(body);
	free(b.s);
	return 0;
}
