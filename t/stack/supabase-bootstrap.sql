-- supabase-bootstrap.sql: what a new Supabase project already has before
-- any migration of ours runs, so the local stack's grants and row level
-- security behave as they do on Supabase.  Run once as the superuser
-- "postgres" on a fresh cluster, before supabase/migrations/.
--
-- The part that matters for dt: Supabase's default privileges grant every
-- new table, function and sequence in schema public to anon and
-- authenticated.  A table is readable with the public anon key unless its
-- migration enables row level security or revokes those grants, and a
-- function can be called by anyone unless its migration revokes EXECUTE.

do $$
begin
	if not exists (select 1 from pg_roles where rolname = 'anon') then
		create role anon nologin noinherit;
	end if;
	if not exists (select 1 from pg_roles where rolname = 'authenticated') then
		create role authenticated nologin noinherit;
	end if;
	if not exists (select 1 from pg_roles where rolname = 'service_role') then
		create role service_role nologin noinherit bypassrls;
	end if;
	if not exists (select 1 from pg_roles where rolname = 'authenticator') then
		create role authenticator login noinherit;
	end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- Supabase's per-role statement timeouts (PostgREST applies them to each
-- request that impersonates the role).  service_role has none of its own:
-- it runs under the timeout of the login, authenticator, which its
-- connections get when they log in.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
	grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
	grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
	grant all on sequences to postgres, anon, authenticated, service_role;
