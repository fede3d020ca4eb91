-- dt: dt_claim and dt_peek cut long texts in the database; dt_settle parks
-- what can never succeed.
--
-- dt_claim and dt_peek take p_max_text_chars: the text goes out cut to
-- that many characters (dt-fetch cuts it to its byte limit on a character
-- boundary), and a fourth column, text_bytes, gives the text's whole size
-- in bytes, so a 3 MiB message never crosses the wire and dt-fetch can
-- say what it cut.  Their earlier versions (without the argument, with
-- three columns) are dropped so that PostgREST sees one function of each
-- name.  dt_settle parks at once a record whose error says it is not
-- retryable ("retryable": false), unless its kind is an outage.  Every
-- statement can run again.

drop function if exists public.dt_claim(text, integer, integer, integer,
	text, text, text, text[], integer, text);
drop function if exists public.dt_peek(integer, text, text, text, text, text[]);

-- dt_claim: leases up to p_limit source rows to run p_run_id for
-- p_lease_seconds and returns them with their attempt number.
--
-- A row can be leased when it is pending, or leased with an expired lease,
-- was not last leased by the same run (a run never takes back a row it
-- gave up or failed: it would only fail it again), has attempts left and
-- has not been claimed p_max_claims times.  Taking a lease counts an
-- attempt at once, so a record that kills its run every time still runs
-- out of attempts; dt_settle gives the attempt back for an outage.
-- FOR UPDATE SKIP LOCKED lets concurrent claimers pass each other's rows
-- instead of waiting or leasing the same row twice.  p_claim_key names the
-- request: when rows are still leased under the same run and key, the
-- request is a retry whose response was lost, and it gets those rows back
-- instead of new ones.  p_max_text_chars (null: no cut) cuts the text;
-- text_bytes is its size before the cut (null for a null text).

create or replace function public.dt_claim(
	p_run_id text,
	p_limit integer default 100,
	p_lease_seconds integer default 900,
	p_max_attempts integer default 3,
	p_source_table text default 'messages',
	p_id_column text default 'id',
	p_text_column text default 'text',
	p_columns text[] default null,
	p_max_claims integer default 50,
	p_claim_key text default null,
	p_max_text_chars integer default null)
returns table (source_id text, attempt integer, data jsonb, text_bytes integer)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
	src regclass;
	id_type text;
	cols text;
	bytes text;
	col text;
	got text[] := '{}';
	more text[];
	want integer;
begin
	if p_run_id is null or pg_catalog.length(p_run_id) not between 1 and 200 then
		raise exception 'p_run_id must be 1 to 200 characters'
		    using errcode = '22023';
	end if;
	if p_limit is null or p_limit not between 1 and 10000 then
		raise exception 'p_limit must be between 1 and 10000'
		    using errcode = '22023';
	end if;
	if p_lease_seconds is null or p_lease_seconds not between 1 and 604800 then
		raise exception 'p_lease_seconds must be between 1 and 604800'
		    using errcode = '22023';
	end if;
	if p_max_attempts is null or p_max_attempts not between 1 and 1000 then
		raise exception 'p_max_attempts must be between 1 and 1000'
		    using errcode = '22023';
	end if;
	if p_max_claims is null or p_max_claims < p_max_attempts then
		raise exception 'p_max_claims must be at least p_max_attempts'
		    using errcode = '22023';
	end if;

	src := public.dt_source(p_source_table);
	id_type := public.dt_column_type(src, p_id_column);
	perform public.dt_column_type(src, p_text_column);
	if p_max_text_chars is not null and p_max_text_chars < 1 then
		raise exception 'p_max_text_chars must be at least 1'
		    using errcode = '22023';
	end if;
	-- The text cut to p_max_text_chars characters, and its whole size.
	cols := pg_catalog.format('%L, s.%I, %L, %s',
	    p_id_column, p_id_column, p_text_column,
	    case when p_max_text_chars is null
		then pg_catalog.format('s.%I', p_text_column)
		else pg_catalog.format('pg_catalog.left(s.%I::text, %s)',
		    p_text_column, p_max_text_chars) end);
	bytes := pg_catalog.format('pg_catalog.octet_length(s.%I::text)',
	    p_text_column);
	if p_columns is not null then
		foreach col in array p_columns loop
			continue when col = p_id_column or col = p_text_column;
			perform public.dt_column_type(src, col);
			cols := cols || pg_catalog.format(', %L, s.%I', col, col);
		end loop;
	end if;

	if p_claim_key is not null then
		select pg_catalog.array_agg(r.source_id) into got
		from public.dt_results r
		where r.status = 'leased' and r.run_id = p_run_id
		    and r.claim_key = p_claim_key;
		got := coalesce(got, '{}');
	end if;

	-- Park what may not be leased again: expired leases and pending rows
	-- that used up their attempts or claims.
	update public.dt_results r
	set status = 'failed', lease_until = null, updated_at = pg_catalog.now(),
	    last_error = case
		when r.status = 'leased' then pg_catalog.jsonb_build_object(
		    'kind', 'lease_expired',
		    'message', pg_catalog.format('no result after %s attempts: '
			'the runs that claimed it ended without storing one',
			r.attempts))
		when r.claims >= p_max_claims then pg_catalog.jsonb_build_object(
		    'kind', 'too_many_claims',
		    'message', pg_catalog.format('claimed %s times without a result',
			r.claims))
		else r.last_error end
	where r.source_id in (
		select c.source_id from public.dt_results c
		where (c.status = 'pending'
		    or (c.status = 'leased' and c.lease_until < pg_catalog.now()))
		    and (c.attempts >= p_max_attempts or c.claims >= p_max_claims)
		for update skip locked);

	for pass in 1..2 loop
		-- A retried request gets its rows back and nothing more.
		exit when p_claim_key is not null and pg_catalog.cardinality(got) > 0;
		want := p_limit - pg_catalog.cardinality(got);
		exit when want <= 0;
		if pass = 2 then
			-- Take source rows dt has not seen yet into dt_results.
			-- One claimer at a time does this (the lock is held to
			-- commit), so two never insert the same rows.
			perform pg_catalog.pg_advisory_xact_lock(
			    pg_catalog.hashtext('dt_claim intake'));
			execute pg_catalog.format(
			    'insert into public.dt_results (source_id) '
			    'select s.%1$I::text from %2$s s '
			    'where not exists (select 1 from public.dt_results r '
			    'where r.source_id = s.%1$I::text) '
			    'order by s.%1$I limit %3$s '
			    'on conflict (source_id) do nothing',
			    p_id_column, src, greatest(p_limit * 10, 10000));
		end if;
		with c as (
			select c.source_id from public.dt_results c
			where (c.status = 'pending'
			    or (c.status = 'leased' and c.lease_until < pg_catalog.now()))
			    and c.run_id is distinct from p_run_id
			    and c.attempts < p_max_attempts and c.claims < p_max_claims
			order by c.intake_seq
			limit want
			for update skip locked),
		u as (
			update public.dt_results r
			set status = 'leased', run_id = p_run_id,
			    lease_until = pg_catalog.now()
				+ pg_catalog.make_interval(secs => p_lease_seconds),
			    attempts = r.attempts + 1, claims = r.claims + 1,
			    max_attempts = p_max_attempts, claim_key = p_claim_key,
			    claimed_at = pg_catalog.now(), updated_at = pg_catalog.now()
			from c where r.source_id = c.source_id
			returning r.source_id)
		select pg_catalog.array_agg(u.source_id) into more from u;
		got := got || coalesce(more, '{}');
	end loop;

	-- A leased row whose source row was deleted cannot be analyzed.
	execute pg_catalog.format(
	    'update public.dt_results r set status = ''failed'', lease_until = null, '
	    'last_error = ''{"kind":"bad_record","message":"the source row no longer exists"}'', '
	    'updated_at = now() '
	    'where r.source_id = any($1) and not exists '
	    '(select 1 from %s s where s.%I = r.source_id::%s)',
	    src, p_id_column, id_type) using got;

	return query execute pg_catalog.format(
	    'select r.source_id, r.attempts, pg_catalog.jsonb_build_object(%s), '
	    '%s::integer '
	    'from public.dt_results r join %s s on s.%I = r.source_id::%s '
	    'where r.source_id = any($1) and r.status = ''leased'' '
	    'order by r.intake_seq',
	    cols, bytes, src, p_id_column, id_type) using got;
end
$$;

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
--   released  an outage: the lease is given back with its attempt
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

	-- Outages give the attempt back.
	update public.dt_results r
	set status = 'pending', lease_until = null,
	    attempts = greatest(r.attempts - 1, 0),
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case when pg_catalog.jsonb_typeof(e -> 'error') = 'object'
	    then coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid
	    and i.kind in ('timeout', 'rate_limited', 'unavailable', 'budget')
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
	    and i.kind not in ('timeout', 'rate_limited', 'unavailable', 'budget')
	    and r.status = 'leased' and r.run_id = p_run_id;

	return query
	select i.sid,
	    case
		when r.source_id is null or r.run_id is distinct from p_run_id
		    or r.status = 'leased' then 'lost'
		when r.status = 'done' then 'stored'
		when r.status = 'failed' then 'failed'
		when r.last_error ->> 'kind' in
		    ('timeout', 'rate_limited', 'unavailable', 'budget') then 'released'
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

-- dt_peek: the source rows a claim could lease next (not done, not
-- parked, not under a live lease), after p_after in id order, without
-- changing anything.  For looking before claiming.
create or replace function public.dt_peek(
	p_limit integer default 100,
	p_after text default null,
	p_source_table text default 'messages',
	p_id_column text default 'id',
	p_text_column text default 'text',
	p_columns text[] default null,
	p_max_text_chars integer default null)
returns table (source_id text, attempt integer, data jsonb, text_bytes integer)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
	src regclass;
	id_type text;
	cols text;
	bytes text;
	col text;
begin
	if p_limit is null or p_limit not between 1 and 10000 then
		raise exception 'p_limit must be between 1 and 10000'
		    using errcode = '22023';
	end if;
	src := public.dt_source(p_source_table);
	id_type := public.dt_column_type(src, p_id_column);
	perform public.dt_column_type(src, p_text_column);
	if p_max_text_chars is not null and p_max_text_chars < 1 then
		raise exception 'p_max_text_chars must be at least 1'
		    using errcode = '22023';
	end if;
	-- The text cut to p_max_text_chars characters, and its whole size.
	cols := pg_catalog.format('%L, s.%I, %L, %s',
	    p_id_column, p_id_column, p_text_column,
	    case when p_max_text_chars is null
		then pg_catalog.format('s.%I', p_text_column)
		else pg_catalog.format('pg_catalog.left(s.%I::text, %s)',
		    p_text_column, p_max_text_chars) end);
	bytes := pg_catalog.format('pg_catalog.octet_length(s.%I::text)',
	    p_text_column);
	if p_columns is not null then
		foreach col in array p_columns loop
			continue when col = p_id_column or col = p_text_column;
			perform public.dt_column_type(src, col);
			cols := cols || pg_catalog.format(', %L, s.%I', col, col);
		end loop;
	end if;
	return query execute pg_catalog.format(
	    'select s.%2$I::text, coalesce(r.attempts, 0) + 1, '
	    'pg_catalog.jsonb_build_object(%1$s), %5$s::integer '
	    'from %3$s s left join public.dt_results r on r.source_id = s.%2$I::text '
	    'where ($1 is null or s.%2$I > $1::%4$s) '
	    'and (r.source_id is null or r.status = ''pending'' '
	    'or (r.status = ''leased'' and r.lease_until < now())) '
	    'order by s.%2$I limit $2',
	    cols, p_id_column, src, id_type, bytes) using p_after, p_limit;
end
$$;

revoke all on function public.dt_claim(text, integer, integer, integer, text, text, text, text[], integer, text, integer)
	from public, anon, authenticated;
revoke all on function public.dt_settle(text, jsonb) from public, anon, authenticated;
revoke all on function public.dt_peek(integer, text, text, text, text, text[], integer)
	from public, anon, authenticated;
grant execute on function public.dt_claim(text, integer, integer, integer, text, text, text, text[], integer, text, integer)
	to service_role;
grant execute on function public.dt_settle(text, jsonb) to service_role;
grant execute on function public.dt_peek(integer, text, text, text, text, text[], integer)
	to service_role;
