-- dt: the same text is not analysed twice.
--
-- A text identical, once trimmed of spaces, tabs and line breaks at both
-- ends, to one already analysed with the same prompt version (dt-analyze's
-- prompt_version: prompt, schema and model) is not sent again.
--
-- - dt_results gains text_sha256 (SHA-256 of the trimmed text, taken when
--   a claim with a prompt version leases the row), lease_version (that
--   prompt version), follows (the row whose analysis this one takes) and
--   reused_from (the source id whose analysis a row took).
-- - dt_claim takes p_prompt_version.  Without it (null) it claims as
--   before.  With it, each row it leases comes with "reused": the stored
--   analysis of its text ({"from", "analysis", "model",
--   "prompt_version"}); or {"same_text_as": id} when another row with the
--   same text is under a live lease for that version or comes first in
--   the same claim (that row is analysed, this one follows it); or null
--   (it is analysed).
-- - dt_settle stores "reused": {"from"} of a result in reused_from, and
--   settles a row that follows another ("same_text") as that row went.
--
-- Analyses stored before this migration have no text_sha256 and are not
-- reused.  Every statement can run again on top of itself.

alter table public.dt_results add column if not exists text_sha256 bytea;
alter table public.dt_results add column if not exists lease_version text;
alter table public.dt_results add column if not exists follows text;
alter table public.dt_results add column if not exists reused_from text;

-- What a claim looks up for every row it leases: an analysis of the same
-- text and version, and a row with the same text under a lease.
create index if not exists dt_results_reuse_done
	on public.dt_results (text_sha256, prompt_version)
	where status = 'done' and text_sha256 is not null;
create index if not exists dt_results_reuse_leased
	on public.dt_results (text_sha256, lease_version)
	where status = 'leased' and text_sha256 is not null;

drop function if exists public.dt_claim(text, integer, integer, integer,
	text, text, text, text[], integer, text, integer);

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
-- p_prompt_version (null: no reuse) makes each row come with "reused", as
-- the head of this file says.
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
	p_max_text_chars integer default null,
	p_prompt_version text default null)
returns table (source_id text, attempt integer, data jsonb, text_bytes integer,
	reused jsonb)
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
	tkey text;
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
	if p_prompt_version is not null
	    and pg_catalog.length(p_prompt_version) not between 1 and 64 then
		raise exception 'p_prompt_version must be 1 to 64 characters'
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

	-- A text's key: null for a null or blank text (nothing to analyse),
	-- else the SHA-256 of the text trimmed of spaces, tabs and line
	-- breaks at both ends, in UTF-8.
	tkey := pg_catalog.format('case when pg_catalog.btrim(s.%1$I::text, '
	    'E'' \t\r\n'') <> '''' then pg_catalog.sha256(pg_catalog.convert_to('
	    'pg_catalog.btrim(s.%1$I::text, E'' \t\r\n''), ''UTF8'')) end',
	    p_text_column);

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
		if p_prompt_version is null then
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
				    text_sha256 = null, lease_version = null, follows = null,
				    claimed_at = pg_catalog.now(), updated_at = pg_catalog.now()
				from c where r.source_id = c.source_id
				returning r.source_id)
			select pg_catalog.array_agg(u.source_id) into more from u;
		else
			-- The same rows, each with its text's key and what it
			-- will get: a stored analysis of the text (done), or
			-- the analysis of the row with the same text under a
			-- live lease (live) or first in this claim (first).
			execute pg_catalog.format(
			    'with c as ('
			    'select r.source_id, r.intake_seq, x.k '
			    'from public.dt_results r '
			    'left join %1$s s on s.%2$I = r.source_id::%3$s '
			    'cross join lateral (select %4$s as k) x '
			    'where (r.status = ''pending'' or (r.status = ''leased'' '
			    'and r.lease_until < pg_catalog.now())) '
			    'and r.run_id is distinct from $1 '
			    'and r.attempts < $2 and r.claims < $3 '
			    'order by r.intake_seq limit $4 '
			    'for update of r skip locked), '
			    'p as (select c.source_id, c.k, '
			    'pg_catalog.first_value(c.source_id) over '
			    '(partition by c.k order by c.intake_seq) as first, '
			    '(select o.source_id from public.dt_results o '
			    'where o.text_sha256 = c.k and o.lease_version = $5 '
			    'and o.status = ''leased'' and o.follows is null '
			    'and o.lease_until >= pg_catalog.now() limit 1) as live, '
			    'exists (select 1 from public.dt_results d '
			    'where d.text_sha256 = c.k and d.prompt_version = $5 '
			    'and d.status = ''done'' and d.analysis is not null) '
			    'as done from c), '
			    'u as (update public.dt_results r '
			    'set status = ''leased'', run_id = $1, '
			    'lease_until = pg_catalog.now() '
			    '+ pg_catalog.make_interval(secs => $6), '
			    'attempts = r.attempts + 1, claims = r.claims + 1, '
			    'max_attempts = $2, claim_key = $7, '
			    'text_sha256 = p.k, lease_version = $5, '
			    'follows = case when p.k is null or p.done then null '
			    'else coalesce(p.live, nullif(p.first, '
			    'p.source_id)) end, '
			    'claimed_at = pg_catalog.now(), '
			    'updated_at = pg_catalog.now() '
			    'from p where r.source_id = p.source_id '
			    'returning r.source_id) '
			    'select pg_catalog.array_agg(u.source_id) from u',
			    src, p_id_column, id_type, tkey)
			into more
			using p_run_id, p_max_attempts, p_max_claims, want,
			    p_prompt_version, p_lease_seconds, p_claim_key;
		end if;
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
	    '%s::integer, case when $2 is null then null '
	    'when r.follows is not null then pg_catalog.jsonb_build_object('
	    '''same_text_as'', r.follows) '
	    'else (select pg_catalog.jsonb_build_object(''from'', '
	    'coalesce(d.reused_from, d.source_id), ''analysis'', d.analysis, '
	    '''model'', d.model, ''prompt_version'', d.prompt_version) '
	    'from public.dt_results d '
	    'where d.text_sha256 = r.text_sha256 and d.prompt_version = $2 '
	    'and d.status = ''done'' and d.analysis is not null limit 1) end '
	    'from public.dt_results r join %s s on s.%I = r.source_id::%s '
	    'where r.source_id = any($1) and r.status = ''leased'' '
	    'order by r.intake_seq',
	    cols, bytes, src, p_id_column, id_type)
	    using got, p_prompt_version;
end
$$;

-- dt_settle: records what run p_run_id made of the rows it leased.
--
-- p_results is a JSON array of objects with "id" (the source id as text)
-- and either the result ("analysis", "model", "prompt_version",
-- "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
-- "latency_ms", and "reused": {"from"} for an analysis of the same text
-- stored before), "skip": {"reason", "message"} (nothing to analyze),
-- "same_text": {"as", "final"} (the row takes the analysis of row "as",
-- which has the same text) or "error": {"kind", "message"}.  Only the run
-- holding a row's lease can change it, so storing the same input again
-- changes nothing.  Returns one row per distinct input id:
--   stored    the analysis is in the table (now, or already by this run)
--   skipped   nothing to analyze: the row is final without an analysis
--   waiting   "same_text" whose row "as" is still leased live: nothing
--             changed; send it again once that row is settled
--   retry     a record-specific failure used an attempt; claimable again
--   failed    a record-specific failure used the last attempt, or its
--             error is not retryable: parked
--   released  an outage, or a setup error (kind "config": the API refused
--             the run's key, model, URL or account, not the record): the
--             lease is given back with its attempt (and for "config" its
--             claim); or "same_text" whose row "as" got no analysis (or
--             with "final": true, is not done yet): given back with its
--             attempt and claim, last_error.kind "same_text"
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
		    and pg_catalog.jsonb_typeof(e -> 'error') is distinct from 'object'
		    and pg_catalog.jsonb_typeof(e -> 'same_text' -> 'as')
			is distinct from 'string')) then
		raise exception 'every element of p_results needs a string "id" '
		    'and an "analysis", "skip", "same_text" or "error" object'
		    using errcode = '22023';
	end if;

	-- The last element wins when an id occurs twice.  kind: null for a
	-- result, 'skip' for a skip, 'same_text' for a row that follows
	-- another, else the error's kind.
	select coalesce(pg_catalog.jsonb_agg(d.e), '[]') into input
	from (select distinct on (t.e ->> 'id') t.e
	    from pg_catalog.jsonb_array_elements(p_results) with ordinality as t(e, n)
	    order by t.e ->> 'id', t.n desc) d;

	-- Results, and rows with nothing to analyze.  A row this run held
	-- that a later claim parked only because its lease ran out takes
	-- them too.
	update public.dt_results r
	set status = case when i.kind is null then 'done' else 'skipped' end,
	    lease_until = null, last_error = null, follows = null,
	    analysis = i.e -> 'analysis',
	    reused_from = case when pg_catalog.jsonb_typeof(i.e -> 'reused')
		= 'object' then i.e -> 'reused' ->> 'from' end,
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
		when pg_catalog.jsonb_typeof(e -> 'same_text') = 'object' then 'same_text'
		else coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and (i.kind is null or i.kind = 'skip')
	    and r.run_id = p_run_id
	    and (r.status = 'leased' or (r.status = 'failed'
		and r.last_error ->> 'kind' = 'lease_expired'));

	-- A row that follows another with the same text takes its analysis
	-- once that row is done, at no cost.
	update public.dt_results r
	set status = 'done', lease_until = null, last_error = null,
	    follows = null, analysis = d.analysis, model = d.model,
	    prompt_version = d.prompt_version, prompt_tokens = 0,
	    completion_tokens = 0, total_tokens = 0, cost_usd = 0,
	    latency_ms = null, reused_from = coalesce(d.reused_from, d.source_id),
	    done_at = pg_catalog.now(), updated_at = pg_catalog.now()
	from pg_catalog.jsonb_array_elements(input) as x(e)
	join public.dt_results d on d.source_id = x.e -> 'same_text' ->> 'as'
	where r.source_id = x.e ->> 'id'
	    and pg_catalog.jsonb_typeof(x.e -> 'analysis') is distinct from 'object'
	    and pg_catalog.jsonb_typeof(x.e -> 'skip') is distinct from 'object'
	    and pg_catalog.jsonb_typeof(x.e -> 'same_text') = 'object'
	    and d.status = 'done' and d.analysis is not null
	    and r.status = 'leased' and r.run_id = p_run_id;

	-- Otherwise it waits while that row is leased live, unless this is
	-- the last word ("final"); else it is given back as if not claimed,
	-- with its attempt and its claim: it never came to be analysed.
	update public.dt_results r
	set status = 'pending', lease_until = null, follows = null,
	    attempts = greatest(r.attempts - 1, 0),
	    claims = greatest(r.claims - 1, 0),
	    last_error = pg_catalog.jsonb_build_object('kind', 'same_text',
		'message', pg_catalog.format('the row with the same text, %s, '
		'got no analysis in this run', x.e -> 'same_text' ->> 'as')),
	    updated_at = pg_catalog.now()
	from pg_catalog.jsonb_array_elements(input) as x(e)
	left join public.dt_results d on d.source_id = x.e -> 'same_text' ->> 'as'
	where r.source_id = x.e ->> 'id'
	    and pg_catalog.jsonb_typeof(x.e -> 'analysis') is distinct from 'object'
	    and pg_catalog.jsonb_typeof(x.e -> 'skip') is distinct from 'object'
	    and pg_catalog.jsonb_typeof(x.e -> 'same_text') = 'object'
	    and r.status = 'leased' and r.run_id = p_run_id
	    and (x.e -> 'same_text' -> 'final' = 'true'::jsonb
		or d.source_id is null or d.status <> 'leased'
		or d.lease_until < pg_catalog.now());

	-- Outages give the attempt back; a setup error ("config") gives the
	-- claim back too, so that a misconfigured run, however often it
	-- comes, never brings a row nearer its claim limit.
	update public.dt_results r
	set status = 'pending', lease_until = null, follows = null,
	    attempts = greatest(r.attempts - 1, 0),
	    claims = case when i.kind = 'config'
		then greatest(r.claims - 1, 0) else r.claims end,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case
		when pg_catalog.jsonb_typeof(e -> 'analysis') = 'object' then null
		when pg_catalog.jsonb_typeof(e -> 'skip') = 'object' then 'skip'
		when pg_catalog.jsonb_typeof(e -> 'same_text') = 'object' then 'same_text'
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
	    lease_until = null, follows = null,
	    last_error = i.e -> 'error', updated_at = pg_catalog.now()
	from (select e ->> 'id' as sid, e, case
		when pg_catalog.jsonb_typeof(e -> 'analysis') = 'object' then null
		when pg_catalog.jsonb_typeof(e -> 'skip') = 'object' then 'skip'
		when pg_catalog.jsonb_typeof(e -> 'same_text') = 'object' then 'same_text'
		else coalesce(e -> 'error' ->> 'kind', 'bad_record') end as kind
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	where r.source_id = i.sid and i.kind is not null
	    and i.kind not in ('skip', 'same_text', 'timeout', 'rate_limited',
		'unavailable', 'budget', 'config')
	    and r.status = 'leased' and r.run_id = p_run_id;

	return query
	select i.sid,
	    case
		when i.same and r.status = 'leased' and r.run_id = p_run_id
		    then 'waiting'
		when r.source_id is null or r.run_id is distinct from p_run_id
		    or r.status = 'leased' then 'lost'
		when r.status = 'done' then 'stored'
		when r.status = 'skipped' then 'skipped'
		when r.status = 'failed' then 'failed'
		when r.last_error ->> 'kind' in ('timeout', 'rate_limited',
		    'unavailable', 'budget', 'config', 'same_text')
		    then 'released'
		else 'retry'
	    end,
	    coalesce(r.attempts, 0)
	from (select e ->> 'id' as sid,
		pg_catalog.jsonb_typeof(e -> 'analysis') is distinct from 'object'
		and pg_catalog.jsonb_typeof(e -> 'skip') is distinct from 'object'
		and pg_catalog.jsonb_typeof(e -> 'same_text') = 'object' as same
	    from pg_catalog.jsonb_array_elements(input) as x(e)) i
	left join public.dt_results r on r.source_id = i.sid
	order by i.sid;
end
$$;

revoke all on function public.dt_claim(text, integer, integer, integer, text,
	text, text, text[], integer, text, integer, text)
	from public, anon, authenticated;
revoke all on function public.dt_settle(text, jsonb) from public, anon, authenticated;
grant execute on function public.dt_claim(text, integer, integer, integer, text,
	text, text, text[], integer, text, integer, text) to service_role;
grant execute on function public.dt_settle(text, jsonb) to service_role;
