/*
 * refusal.c: what dt-analyze does when the API's refusals look like the
 * run's setup, not the records (docs/analyze.md, "Setup errors"): the
 * test call with a plain text, the one line that says what to fix, and
 * the stop file that ends the run.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "log.h"
#include "shared.h"
#include "utf8.h"

/*
 * The one line that says what to fix when the API refuses the run's
 * setup: which variable, why (the API's own message) and what happens
 * to the rows.
 */
void
dt_az_setup_line(struct run *x, long status, const char *sig,
    const char *apimsg, char *buf, size_t len)
{
	char answer[400];

	utf8_format(answer, sizeof(answer), "HTTP %ld%s%s", status,
	    apimsg[0] ? ": " : "", apimsg);
	if (status == 401 || status == 403)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API refused the "
		    "key (%s); check the key", answer);
	else if (status == 402)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API account "
		    "cannot pay for calls (%s); add credits to it", answer);
	else if (status < 400)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s answers with a "
		    "redirect (%s); set PERPLEXITY_BASE_URL to where it points "
		    "(https://api.perplexity.ai)", x->url, answer);
	else if (status == 404)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s does not exist "
		    "(%s); check PERPLEXITY_BASE_URL (https://api.perplexity.ai) "
		    "and DT_API", x->url, answer);
	else if (strcasestr(apimsg, "model") != NULL ||
	    strcasestr(sig, "model") != NULL)
		utf8_format(buf, len, "PERPLEXITY_MODEL: the API refused model "
		    "'%s' (%s); fix the model name", x->c.model, answer);
	else
		utf8_format(buf, len, "the API refused records and a plain "
		    "test text alike (%s); check PERPLEXITY_MODEL, DT_API, "
		    "DT_SCHEMA_FILE and PERPLEXITY_BASE_URL", answer);
}

/*
 * The last call of a streak of refusals: the same request with a plain
 * text of no user's in place of a record's.  The same refusal for it is
 * the setup's, and opens the circuit (returns 1); an analysis proves
 * the setup good, so the refusals were the records' own.  The call is
 * made under the rate limit and the budget; what it costs counts in
 * the stage's totals, not in any record's.
 */
int
dt_az_probe_setup(struct run *x, const struct dt_http_req *like,
    const char *line)
{
	static const char probe[] = "Thanks for the update, see you tomorrow.";
	struct config *c = &x->c;
	struct dt_http_req req = *like; /* cancel too */
	struct dt_http_resp resp;
	struct dt_usage u;
	json_t *analysis = NULL;
	char *input, *body, *raw = NULL, sig[64], why[300], model[128];
	size_t ilen, blen;
	double reserved;
	long long wait;
	int opened = 0, streak, rc;

	if ((input = dt_api_wrap(probe, sizeof(probe) - 1, &ilen)) == NULL ||
	    (body = dt_api_body(&x->api, input, ilen, &blen)) == NULL) {
		free(input);
		return 0;
	}
	if (!dt_shared_budget_take(x->sh, c->budget, &reserved))
		goto done;
	while ((wait = dt_shared_slot(x->sh)) > 0 && !dt_az_nap(x, wait))
		;
	if (dt_az_signal || dt_az_stopping || wait > 0) {
		dt_shared_budget_settle(x->sh, c->budget, reserved, 0);
		goto done;
	}
	req.body = body;
	req.body_len = blen;
	memset(&resp, 0, sizeof(resp));
	memset(&u, 0, sizeof(u));
	dt_http_once(x->http, &req, &c->pol, &resp);
	rc = -1;
	if (dt_retry_answer(&resp) == DT_ANSWER_OK)
		rc = dt_api_parse(&x->api, resp.body, resp.len, &analysis, &u,
		    model, sizeof(model), why, sizeof(why), &raw);
	json_decref(analysis);
	free(raw);
	dt_shared_budget_settle(x->sh, c->budget, reserved, u.cost_usd);
	x->n.tokens += u.total_tokens;
	x->n.cost += u.cost_usd;
	if (rc != -1)
		dt_shared_setup_ok(x->sh, rc == DT_API_OK);
	else if (dt_retry_answer(&resp) == DT_ANSWER_REFUSED ||
	    dt_retry_answer(&resp) == DT_ANSWER_SETUP) {
		dt_api_error_type(resp.body, resp.len, sig, sizeof(sig));
		opened = dt_shared_setup_note(x->sh, resp.status, sig,
		    DT_AZ_SETUP_THRESHOLD, line, &streak);
	}
	dt_debug("the test call with a plain text: %s", rc == DT_API_OK ?
	    "analyzed: the setup is good" : opened ? "refused alike: the "
	    "setup is at fault" : "no verdict");
	dt_http_resp_clear(&resp);
done:
	free(body);
	free(input);
	return opened;
}

/*
 * Once the circuit opened for a setup error, dt-fetch is to claim no
 * more: the stop file says so (and every worker sees it too).
 */
void
dt_az_stop_the_run(const char *stop_file)
{
	int fd;

	if (stop_file != NULL && (fd = open(stop_file, O_WRONLY | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0)
		close(fd);
}
