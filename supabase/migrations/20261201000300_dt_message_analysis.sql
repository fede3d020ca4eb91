-- dt: public.dt_message_analysis, the results as the bot reads them.
--
-- One row per source row dt has taken in: the source id typed as in the
-- source table, the status, the analysis fields (analyze/schema.json),
-- the model, the prompt version and when it was analysed.  The analysis
-- columns are null until the status is 'done'.
--
-- The source table is the bot's and configurable (DT_SOURCE_TABLE), and
-- dt_results keeps its id as text.  This migration types the id as the
-- column "id" of public.messages is typed; when there is no such column
-- (yet), as bigint (the type of the sample in seed.sql and of a Telegram
-- message id).  For another table, change src and id_col below (or run
-- the block again with them changed): reading a row whose id does not
-- convert to the type is an error, never a wrong row.
--
-- Like dt's tables, only service_role may read it: security_invoker makes
-- the reader's own rights (and row level security) apply to dt_results,
-- and the grants below keep anon and authenticated out.  Every statement
-- can run again; a changed id type replaces the view.

do $$
declare
	-- The source table and its id column.
	src text := 'public.messages';
	id_col text := 'id';
	id_type text := 'bigint';
	cur text;
begin
	select coalesce(pg_catalog.max(pg_catalog.format_type(a.atttypid,
	    a.atttypmod)), id_type) into id_type
	from pg_catalog.pg_attribute a
	where a.attrelid = pg_catalog.to_regclass(src) and a.attname = id_col
	    and a.attnum > 0 and not a.attisdropped;
	select pg_catalog.format_type(a.atttypid, a.atttypmod) into cur
	from pg_catalog.pg_attribute a
	where a.attrelid = pg_catalog.to_regclass('public.dt_message_analysis')
	    and a.attname = 'message_id';
	if cur is not null and cur <> id_type then
		drop view public.dt_message_analysis;
	end if;
	execute pg_catalog.format($view$
		create or replace view public.dt_message_analysis
		with (security_invoker = true) as
		select r.source_id::%s as message_id,
		    r.status,
		    r.analysis ->> 'sentiment' as sentiment,
		    case when pg_catalog.jsonb_typeof(r.analysis -> 'topics') = 'array'
			then array(select pg_catalog.jsonb_array_elements_text(
			    r.analysis -> 'topics')) end as topics,
		    r.analysis ->> 'language' as language,
		    r.analysis ->> 'summary' as summary,
		    case when pg_catalog.jsonb_typeof(r.analysis -> 'action_items') = 'array'
			then array(select pg_catalog.jsonb_array_elements_text(
			    r.analysis -> 'action_items')) end as action_items,
		    case when pg_catalog.jsonb_typeof(r.analysis -> 'confidence') = 'number'
			then (r.analysis ->> 'confidence')::double precision end as confidence,
		    r.model,
		    r.prompt_version,
		    r.done_at as analyzed_at
		from public.dt_results r
		$view$, id_type);
end
$$;

comment on view public.dt_message_analysis is
	'dt''s analysis of each source message (service_role only); see docs/supabase.md';

revoke all on table public.dt_message_analysis from public, anon, authenticated;
grant select on table public.dt_message_analysis to service_role;
