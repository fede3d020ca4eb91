-- dt: the results table and the run ledger.
--
-- Plain SQL for the Supabase CLI (supabase db push) and the local stack.
-- Every statement can run again on top of itself or of an earlier version.
--
-- The source table belongs to the bot and is not created here.  dt keeps
-- its own state in dt_results, one row per source row, keyed by the
-- source id as text (so an integer, uuid or text id all fit).

create table if not exists public.dt_results (
	source_id text primary key,
	-- pending: waiting to be claimed; leased: a run holds it until
	-- lease_until; done: analysis stored; failed: parked after
	-- max_attempts record-specific failures (dead letter).
	status text not null default 'pending',
	-- The run holding the lease, or the last run that held it.
	run_id text,
	lease_until timestamptz,
	-- attempts: leases that count against max_attempts (an outage gives
	-- its attempt back); claims: every lease ever taken.
	attempts integer not null default 0,
	claims integer not null default 0,
	max_attempts integer,
	analysis jsonb,
	model text,
	prompt_version text,
	prompt_tokens integer,
	completion_tokens integer,
	total_tokens integer,
	cost_usd numeric,
	latency_ms integer,
	-- {"kind": "...", "message": "..."} of the last failure.
	last_error jsonb,
	intake_seq bigint generated always as identity,
	created_at timestamptz not null default now(),
	claimed_at timestamptz,
	updated_at timestamptz not null default now(),
	done_at timestamptz
);

-- Columns added after the first version go here, so an older table
-- gains them when the migration runs again.
alter table public.dt_results add column if not exists claim_key text;

do $$
begin
	if not exists (select 1 from pg_constraint
	    where conname = 'dt_results_status_check'
	    and conrelid = 'public.dt_results'::regclass) then
		alter table public.dt_results add constraint dt_results_status_check
		    check (status in ('pending', 'leased', 'done', 'failed'));
	end if;
end
$$;

-- What dt_claim scans: the rows that can still be leased, in intake order.
create index if not exists dt_results_claimable
	on public.dt_results (intake_seq) where status in ('pending', 'leased');
create index if not exists dt_results_status on public.dt_results (status);

-- One row per run, written by dt-report.
create table if not exists public.dt_runs (
	run_id text primary key,
	started_at timestamptz,
	finished_at timestamptz,
	status text,
	exit_code integer,
	counts jsonb,
	tokens bigint,
	cost_usd numeric,
	summary jsonb
);

-- Supabase grants new tables in public to anon and authenticated by
-- default.  Row level security without a policy hides every row from
-- them, and the revokes make any attempt a permission error.  service_role
-- bypasses row level security.
alter table public.dt_results enable row level security;
alter table public.dt_runs enable row level security;
revoke all on table public.dt_results from public, anon, authenticated;
revoke all on table public.dt_runs from public, anon, authenticated;
revoke all on sequence public.dt_results_intake_seq_seq from public, anon, authenticated;
grant select, insert, update, delete on table public.dt_results to service_role;
grant select, insert, update, delete on table public.dt_runs to service_role;
grant usage, select on sequence public.dt_results_intake_seq_seq to service_role;
