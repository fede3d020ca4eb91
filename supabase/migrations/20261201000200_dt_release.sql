-- dt: dt_release gives back the leases of one claim that its caller never
-- received.
--
-- Supabase cuts every reply at the project's "Max rows" (PostgREST's
-- db-max-rows, 1,000 unless changed), RPC results included, after the
-- function has run: a dt_claim asked for more rows than that leases them
-- all and returns only the first ones.  dt-fetch never asks for more than
-- 1,000, and it sees a cut all the same when a project's cap is lower
-- (the reply's Content-Range gives the whole count); it then calls
-- dt_release with the ids it did receive, and the other rows of that
-- claim (run p_run_id, key p_claim_key) go back to pending with their
-- attempt and claim given back, as if never claimed.  Returns how many.
-- Every statement can run again.

create or replace function public.dt_release(
	p_run_id text,
	p_claim_key text,
	p_keep text[] default '{}')
returns integer
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
	n integer;
begin
	if p_run_id is null or p_run_id = '' or p_claim_key is null
	    or p_claim_key = '' then
		raise exception 'p_run_id and p_claim_key must not be empty'
		    using errcode = '22023';
	end if;
	update public.dt_results r
	set status = 'pending', lease_until = null, claim_key = null,
	    attempts = greatest(r.attempts - 1, 0),
	    claims = greatest(r.claims - 1, 0),
	    updated_at = pg_catalog.now()
	where r.status = 'leased' and r.run_id = p_run_id
	    and r.claim_key = p_claim_key
	    and not (r.source_id = any(coalesce(p_keep, '{}')));
	get diagnostics n = row_count;
	return n;
end
$$;

revoke all on function public.dt_release(text, text, text[]) from public, anon, authenticated;
grant execute on function public.dt_release(text, text, text[]) to service_role;
