-- dt: dt_settle gives back the attempt and the claim of a row whose error
-- is of kind "config".
--
-- dt-analyze gives that kind to a record whose call the API refused for
-- a reason that is not provably the record's: a refused key (401, 403),
-- an account that cannot pay (402), a wrong base URL (404, a redirect),
-- and any other refusal (400, 422 ...) while it may still be the run's
-- setup (a misspelt model refuses every record the same way).  Such a
-- row must not use an attempt, be parked, or come nearer the claim
-- limit: the next run with a mended setup analyzes it as if nothing had
-- happened.  Only dt_settle changes: the latest definition
-- (20261128000200) with "config" among the outages, whose attempt goes
-- back, and its claim given back too.  Every statement can run again.

-- dt_settle: records what run p_run_id made of the rows it leased.
--
-- p_results is a JSON array of objects with "id" (the source id as text)
-- and either the result ("analysis", "model", "prompt_version",
-- "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
-- "latency_ms") or "error": {"kind", "message"}.  Only the run holding a
-- row's lease can change it, so storing the same input again changes
-- nothing.  Returns one row per distinct input id:
--   stored    the analysis is in the table (now, or already by this run)
--   retry     a record-specific failure used an attempt; claimable again
--   failed    a record-specific failure used the last attempt, or its
--             error is not retryable: parked
--   released  an outage, or a setup error (kind "config": the API refused
--             the run's key, model, URL or account, not the record): the
--             lease is given back with its attempt (and for "config" its
--             claim)
--   lost      this run does not hold the row (another run took it over
--             after the lease expired, or the id is unknown): not written
create or replace function public.dt_settle(p_run_id text, p_results jsonb)
returns table (source_id text, outcome text, attempts integer)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
	input jsonb;
begin
	if p_run_id is null or p_run_id = '' then
		raise exception 'p_run_id is empty' using errcode = '22023';
	end if;
	if p_results is null or pg_catalog.jsonb_typeof(p_results) <> 'array' then
		raise exception 'p_results must be a JSON array'
		    using errcode = '22023';
	end if;
	if exists (select 1 from pg_catalog.jsonb_array_elements(p_results) e
	    where pg_catalog.jsonb_typeof(e) <> 'object'
		or pg_catalog.jsonb_typeof(e -> 'id') is distinct from 'string'
		or (pg_catalog.jsonb_typeof(e -> 'analysis') is distinct from 'object'
		    and pg_catalog.jsonb_typeof(e -> 'error') is distinct from 'object')) then
		raise exception 'every element of p_results needs a string "id" '
		    'and an "analysis" or "error" object'
		    using errcode = '22023';
	end if;

	-- The last element wins when an id occurs twice.
	select coalesce(pg_catalog.jsonb_agg(d.e), '[]') into input
	from (select distinct on (t.e ->> 'id') t.e
	    from pg_catalog.jsonb_array_elements(p_results) with ordinality as t(e, n)
	    order by t.e ->> 'id', t.n desc) d;

	-- Results.
	update public.dt_results r
	set status = 'done', lease_until = null, last_error = null,
	    analysis = i.e -> 'analysis',
	    model = i.e ->> 'model',
	    prompt_version = i.e ->> 'prompt_version',
	    prompt_tokens = (i.e ->> 'prompt_tokens')::integer,
	    completion_tokens = (i.e ->> 'completion_tokens')::integer,
	    total_tokens = (i.e ->> 'total_tokens')::integer,
	    cost_usd = (i.e ->> 'cost_usd')::numeric,
	    latency_ms = (i.e ->> 'latency_ms')::integer,
	    done_at = pg_catalog.now(), updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case when pg_catalog.jsonb_typeof(e -> 'error') = 'object'
	    then coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and i.kind is null
	    and r.status = 'leased' and r.run_id = p_run_id;

	-- Outages give the attempt back; a setup error ("config") gives the
	-- claim back too, so that a misconfigured run, however often it
	-- comes, never brings a row nearer its claim limit.
	update public.dt_results r
	set status = 'pending', lease_until = null,
	    attempts = greatest(r.attempts - 1, 0),
	    claims = case when i.kind = 'config'
		then greatest(r.claims - 1, 0) else r.claims end,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case when pg_catalog.jsonb_typeof(e -> 'error') = 'object'
	    then coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid
	    and i.kind in ('timeout', 'rate_limited', 'unavailable', 'budget', 'config')
	    and r.status = 'leased' and r.run_id = p_run_id;

	-- Record-specific failures keep the attempt the lease counted; one
	-- that says it can never succeed ("retryable": false: an empty text,
	-- a text too large to analyze) is parked at once.
	update public.dt_results r
	set status = case when r.attempts >= coalesce(r.max_attempts, 1)
		or i.e -> 'error' -> 'retryable' = 'false'::jsonb
		then 'failed' else 'pending' end,
	    lease_until = null,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case when pg_catalog.jsonb_typeof(e -> 'error') = 'object'
	    then coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and i.kind is not null
	    and i.kind not in ('timeout', 'rate_limited', 'unavailable', 'budget', 'config')
	    and r.status = 'leased' and r.run_id = p_run_id;

	return query
	select i.sid,
	    case
		when r.source_id is null or r.run_id is distinct from p_run_id
		    or r.status = 'leased' then 'lost'
		when r.status = 'done' then 'stored'
		when r.status = 'failed' then 'failed'
		when r.last_error ->> 'kind' in
		    ('timeout', 'rate_limited', 'unavailable', 'budget', 'config') then 'released'
		else 'retry'
	    end,
	    coalesce(r.attempts, 0)
	from (select e ->> 'id' as sid, e, case when pg_catalog.jsonb_typeof(e -> 'error') = 'object'
	    then coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	left join public.dt_results r on r.source_id = i.sid
	order by i.sid;
end
$$;

revoke all on function public.dt_settle(text, jsonb) from public, anon, authenticated;
grant execute on function public.dt_settle(text, jsonb) to service_role;
