-- dt: rows without text are skipped, not failed; saved results of an
-- earlier run can be stored; parked rows can be returned to the queue.
--
-- - dt_results.status gains 'skipped': a row with nothing to analyze (an
--   empty, blank or NULL text: a sticker, a photo, a join).  Final, like
--   'done': never claimed again.
-- - dt_settle takes a third kind of element, {"id", "skip": {...}}, which
--   makes a held row 'skipped' (outcome skipped).  It gives the attempt
--   back for the outage kinds, and the attempt and the claim for "config"
--   (the run's setup was wrong, not the record), as
--   20261201000000_dt_release_config.sql has it.  A result or a skip is
--   also taken for a row this run held whose lease ran out and which a
--   later claim parked as lease_expired: the row was parked only because
--   no result came, and now one has.
-- - dt_reclaim stores the results of a saved run whose leases expired:
--   it takes over each named row that is still unsettled and not leased
--   live by another run, then settles as dt_settle does.
-- - dt_requeue returns parked rows (all, or those of one last_error.kind)
--   to 'pending' with their attempts and claims reset.
--
-- Every statement can run again on top of itself.

alter table public.dt_results drop constraint if exists dt_results_status_check;
alter table public.dt_results add constraint dt_results_status_check
	check (status in ('pending', 'leased', 'done', 'failed', 'skipped'));

-- dt_settle: records what run p_run_id made of the rows it leased.
--
-- p_results is a JSON array of objects with "id" (the source id as text)
-- and either the result ("analysis", "model", "prompt_version",
-- "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
-- "latency_ms"), "skip": {"reason", "message"} (nothing to analyze) or
-- "error": {"kind", "message"}.  Only the run holding a row's lease can
-- change it, so storing the same input again changes nothing.  Returns
-- one row per distinct input id:
--   stored    the analysis is in the table (now, or already by this run)
--   skipped   nothing to analyze: the row is final without an analysis
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
		    and pg_catalog.jsonb_typeof(e -> 'skip') is distinct from 'object'
		    and pg_catalog.jsonb_typeof(e -> 'error') is distinct from 'object')) then
		raise exception 'every element of p_results needs a string "id" '
		    'and an "analysis", "skip" or "error" object'
		    using errcode = '22023';
	end if;

	-- The last element wins when an id occurs twice.  kind: null for a
	-- result, 'skip' for a skip, else the error's kind.
	select coalesce(pg_catalog.jsonb_agg(d.e), '[]') into input
	from (select distinct on (t.e ->> 'id') t.e
	    from pg_catalog.jsonb_array_elements(p_results) with ordinality as t(e, n)
	    order by t.e ->> 'id', t.n desc) d;

	-- Results, and rows with nothing to analyze.  A row this run held
	-- that a later claim parked only because its lease ran out takes
	-- them too.
	update public.dt_results r
	set status = case when i.kind is null then 'done' else 'skipped' end,
	    lease_until = null, last_error = null,
	    analysis = i.e -> 'analysis',
	    model = i.e ->> 'model',
	    prompt_version = i.e ->> 'prompt_version',
	    prompt_tokens = (i.e ->> 'prompt_tokens')::integer,
	    completion_tokens = (i.e ->> 'completion_tokens')::integer,
	    total_tokens = (i.e ->> 'total_tokens')::integer,
	    cost_usd = (i.e ->> 'cost_usd')::numeric,
	    latency_ms = (i.e ->> 'latency_ms')::integer,
	    done_at = pg_catalog.now(), updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case
		when pg_catalog.jsonb_typeof(e -> 'analysis') = 'object' then null
		when pg_catalog.jsonb_typeof(e -> 'skip') = 'object' then 'skip'
		else coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and (i.kind is null or i.kind = 'skip')
	    and r.run_id = p_run_id
	    and (r.status = 'leased' or (r.status = 'failed'
		and r.last_error ->> 'kind' = 'lease_expired'));

	-- Outages give the attempt back; a setup error ("config") gives the
	-- claim back too, so that a misconfigured run, however often it
	-- comes, never brings a row nearer its claim limit.
	update public.dt_results r
	set status = 'pending', lease_until = null,
	    attempts = greatest(r.attempts - 1, 0),
	    claims = case when i.kind = 'config'
		then greatest(r.claims - 1, 0) else r.claims end,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case
		when pg_catalog.jsonb_typeof(e -> 'analysis') = 'object' then null
		when pg_catalog.jsonb_typeof(e -> 'skip') = 'object' then 'skip'
		else coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid
	    and i.kind in ('timeout', 'rate_limited', 'unavailable', 'budget', 'config')
	    and r.status = 'leased' and r.run_id = p_run_id;

	-- Record-specific failures keep the attempt the lease counted; one
	-- that says it can never succeed ("retryable": false: a text too
	-- large to analyze) is parked at once.
	update public.dt_results r
	set status = case when r.attempts >= coalesce(r.max_attempts, 1)
		or i.e -> 'error' -> 'retryable' = 'false'::jsonb
		then 'failed' else 'pending' end,
	    lease_until = null,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case
		when pg_catalog.jsonb_typeof(e -> 'analysis') = 'object' then null
		when pg_catalog.jsonb_typeof(e -> 'skip') = 'object' then 'skip'
		else coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and i.kind is not null and i.kind <> 'skip'
	    and i.kind not in ('timeout', 'rate_limited', 'unavailable', 'budget', 'config')
	    and r.status = 'leased' and r.run_id = p_run_id;

	return query
	select i.sid,
	    case
		when r.source_id is null or r.run_id is distinct from p_run_id
		    or r.status = 'leased' then 'lost'
		when r.status = 'done' then 'stored'
		when r.status = 'skipped' then 'skipped'
		when r.status = 'failed' then 'failed'
		when r.last_error ->> 'kind' in
		    ('timeout', 'rate_limited', 'unavailable', 'budget', 'config')
		    then 'released'
		else 'retry'
	    end,
	    coalesce(r.attempts, 0)
	from (select e ->> 'id' as sid from pg_catalog.jsonb_array_elements(input) as x(e)) i
	left join public.dt_results r on r.source_id = i.sid
	order by i.sid;
end
$$;

-- dt_reclaim: stores what a saved run p_run_id made of its rows after its
-- leases expired (dt-store --reclaim).  p_results is dt_settle's input.
--
-- Each row named by a result or a skip that is still unsettled is taken
-- over for p_run_id: pending, leased by p_run_id, leased with an expired
-- lease, or parked as lease_expired (parked only because no result
-- came).  A row leased live by another run is not taken: that run is
-- working on it.  The takeover's conditions are checked again on the
-- row's latest version once its lock is had, and dt_claim skips locked
-- rows, so a concurrent claim and a reclaim never both get a row.  Then
-- the input is settled as dt_settle does.  An error record is settled
-- only where p_run_id still holds the row: it is not worth a takeover.
-- Returns dt_settle's rows, except that a row left alone says why:
--   settled   it was settled meanwhile (done, skipped or parked)
--   held      another run holds a live lease on it
--   pending   an error record for a row that waits to be claimed again
--   lost      the id is not in dt_results
create or replace function public.dt_reclaim(p_run_id text, p_results jsonb)
returns table (source_id text, outcome text, attempts integer)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
#variable_conflict use_column
begin
	if p_run_id is null or p_run_id = '' then
		raise exception 'p_run_id is empty' using errcode = '22023';
	end if;
	if p_results is null or pg_catalog.jsonb_typeof(p_results) <> 'array' then
		raise exception 'p_results must be a JSON array'
		    using errcode = '22023';
	end if;

	update public.dt_results r
	set status = 'leased', run_id = p_run_id, lease_until = pg_catalog.now(),
	    claim_key = null, updated_at = pg_catalog.now()
	where r.source_id in (select e ->> 'id'
		from pg_catalog.jsonb_array_elements(p_results) as x(e)
		where pg_catalog.jsonb_typeof(e) = 'object'
		    and (pg_catalog.jsonb_typeof(e -> 'analysis') = 'object'
			or pg_catalog.jsonb_typeof(e -> 'skip') = 'object'))
	    and (r.status = 'pending'
		or (r.status = 'leased' and (r.run_id = p_run_id
		    or r.lease_until < pg_catalog.now()))
		or (r.status = 'failed'
		    and r.last_error ->> 'kind' = 'lease_expired'));

	return query
	select s.source_id,
	    case
		when s.outcome <> 'lost' or r.source_id is null then s.outcome
		when r.status in ('done', 'skipped', 'failed') then 'settled'
		when r.status = 'leased' and r.lease_until >= pg_catalog.now()
		    then 'held'
		else 'pending'
	    end,
	    s.attempts
	from public.dt_settle(p_run_id, p_results) s
	left join public.dt_results r on r.source_id = s.source_id
	order by s.source_id;
end
$$;

-- dt_requeue: returns parked rows (status failed) to the queue: all of
-- them, or those whose last_error.kind is p_kind.  Their attempts and
-- claims start again from 0 and any run may claim them; last_error stays
-- until they are settled again.  With p_dry_run nothing changes.
-- Returns {"rows": N, "by_kind": {"<kind>": N, ...}}: what was (or would
-- be) requeued.  (A data-modifying WITH runs to its end whether or not
-- the query reads it.)
create or replace function public.dt_requeue(
	p_kind text default null,
	p_dry_run boolean default false)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
	res jsonb;
begin
	if p_kind is not null and pg_catalog.length(p_kind) not between 1 and 64 then
		raise exception 'p_kind must be 1 to 64 characters'
		    using errcode = '22023';
	end if;
	with picked as (
		select r.source_id, coalesce(r.last_error ->> 'kind', 'unknown') as kind
		from public.dt_results r
		where r.status = 'failed'
		    and (p_kind is null or r.last_error ->> 'kind' = p_kind)
		for update),
	changed as (
		update public.dt_results r
		set status = 'pending', attempts = 0, claims = 0, run_id = null,
		    lease_until = null, claim_key = null,
		    updated_at = pg_catalog.now()
		from picked p
		where r.source_id = p.source_id and not coalesce(p_dry_run, false)),
	counts as (
		select p.kind, count(*) as n from picked p group by p.kind)
	select pg_catalog.jsonb_build_object(
	    'rows', coalesce(sum(c.n), 0),
	    'by_kind', coalesce(pg_catalog.jsonb_object_agg(c.kind, c.n)
		filter (where c.kind is not null), '{}'))
	into res
	from counts c;
	return res;
end
$$;

revoke all on function public.dt_settle(text, jsonb) from public, anon, authenticated;
revoke all on function public.dt_reclaim(text, jsonb) from public, anon, authenticated;
revoke all on function public.dt_requeue(text, boolean) from public, anon, authenticated;
grant execute on function public.dt_settle(text, jsonb) to service_role;
grant execute on function public.dt_reclaim(text, jsonb) to service_role;
grant execute on function public.dt_requeue(text, boolean) to service_role;
