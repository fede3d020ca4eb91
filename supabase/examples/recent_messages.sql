-- An example source view for a first run: only the messages with text
-- from the last 30 days.  Not a migration: apply it by hand (SQL editor,
-- or psql -f), change the days or the conditions to suit, and point dt at
-- it with DT_SOURCE_TABLE=dt_recent_messages.  docs/supabase.md says more.
--
-- Rows the view leaves out are never claimed while dt reads the view;
-- they are not marked either, so pointing DT_SOURCE_TABLE back at the
-- table takes them too.  The source table here is the sample
-- public.messages (id, chat_id, user_id, text, created_at); name your
-- bot's table and columns instead.

create or replace view public.dt_recent_messages
with (security_invoker = true) as
select m.id, m.chat_id, m.user_id, m.text, m.created_at
from public.messages m
where m.text is not null
	and pg_catalog.btrim(m.text, E' \t\r\n') <> ''
	and m.created_at >= pg_catalog.now() - interval '30 days';
	-- To skip some more, add a condition, e.g.:
	-- and m.id > 120000          (everything up to a known message)
	-- and m.chat_id <> -100123   (a chat that is not to be analyzed)

-- Like dt's own tables: no access with the public keys, reading for the
-- service role (security_invoker: the table's own rights and row level
-- security apply to whoever reads the view).
revoke all on public.dt_recent_messages from public, anon, authenticated;
grant select on public.dt_recent_messages to service_role;
