#!/usr/bin/env node
// tools/supabase-js/check.mjs: runs Supabase's own JavaScript client
// against a Supabase data API (the local stand-in in the tests) and prints
// one line per call, for t/081-stack-supabase.bats to compare:
//
//   <name>: HTTP <status> rows=<n>|data=<json> [count=<n>] [error=<code>: <message>]
//
// (view also prints each row as JSON.)
//
//   node tools/supabase-js/check.mjs keys|cap|timeouts|view
//
// Reads SUPABASE_URL, SUPABASE_KEY (a secret key), SUPABASE_PUBLISHABLE_KEY,
// SUPABASE_SERVICE_ROLE_JWT, SUPABASE_ANON_KEY and SUPABASE_JWT_SECRET
// (t/stack/up exports them all).  Keys are never printed.
import { createHmac } from 'node:crypto';
import { createClient } from '@supabase/supabase-js';

const env = process.env;
const url = env.SUPABASE_URL;
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';

// Realtime is not used; on Node.js 20 (no WebSocket of its own) the client
// wants a transport even so.  This one is never constructed.
class NoRealtime {
  constructor() {
    throw new Error('realtime is not used here');
  }
}

function client(key, headers) {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { headers: headers || {} },
    realtime: { transport: NoRealtime },
  });
}

// A user's JWT as Supabase Auth signs it with the legacy JWT secret.
function userJwt() {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ iss: 'supabase', sub: '00000000-0000-0000-0000-000000000001',
    role: 'authenticated', iat: now, exp: now + 600 });
  const sig = createHmac('sha256', env.SUPABASE_JWT_SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

function show(name, res) {
  let line = `${name}: HTTP ${res.status}`;
  if (Array.isArray(res.data)) line += ` rows=${res.data.length}`;
  else if (res.data !== null && res.data !== undefined) line += ` data=${JSON.stringify(res.data)}`;
  if (res.count !== null && res.count !== undefined) line += ` count=${res.count}`;
  if (res.error) line += ` error=${res.error.code ?? '-'}: ${res.error.message}`;
  console.log(line);
}

const secret = () => client(env.SUPABASE_KEY);
const publishable = () => client(env.SUPABASE_PUBLISHABLE_KEY);

const scenarios = {
  async keys() {
    show('secret messages', await secret().from('messages').select('id'));
    show('secret dt_backlog', await secret().rpc('dt_backlog'));
    show('publishable dt_results', await publishable().from('dt_results').select('source_id'));
    show('publishable dt_claim', await publishable().rpc('dt_claim', { p_run_id: 'js' }));
    show('publishable dt_message_analysis', await publishable().from('dt_message_analysis').select('*'));
    show('service_role JWT dt_results', await client(env.SUPABASE_SERVICE_ROLE_JWT).from('dt_results').select('source_id'));
    show('anon JWT dt_results', await client(env.SUPABASE_ANON_KEY).from('dt_results').select('source_id'));
    show('secret key from a browser', await client(env.SUPABASE_KEY, { 'User-Agent': BROWSER }).from('messages').select('id'));
    show('publishable key from a browser', await client(env.SUPABASE_PUBLISHABLE_KEY, { 'User-Agent': BROWSER }).from('messages').select('id'));
    show('unknown secret key', await client('sb_secret_' + 'x'.repeat(31)).from('messages').select('id'));
  },
  async cap() {
    show('select', await secret().from('messages').select('id'));
    show('select count', await secret().from('messages').select('id', { count: 'exact' }));
    show('select range past the cap', await secret().from('messages').select('id').range(1000, 1499));
    show('rpc dt_peek', await secret().rpc('dt_peek', { p_limit: 1500 }));
    show('rpc dt_claim count', await secret().rpc('dt_claim', { p_run_id: 'js', p_limit: 1500 }, { count: 'exact' }));
  },
  async timeouts() {
    show('secret', await secret().rpc('t_statement_timeout'));
    show('publishable', await publishable().rpc('t_statement_timeout'));
    show('service_role JWT', await client(env.SUPABASE_SERVICE_ROLE_JWT).rpc('t_statement_timeout'));
    show('anon JWT', await client(env.SUPABASE_ANON_KEY).rpc('t_statement_timeout'));
    show('user JWT', await client(env.SUPABASE_PUBLISHABLE_KEY, { Authorization: `Bearer ${userJwt()}` }).rpc('t_statement_timeout'));
  },
  async view() {
    const res = await secret().from('dt_message_analysis')
      .select('message_id, status, sentiment, topics, language, summary, action_items, confidence, model, prompt_version, analyzed_at')
      .order('message_id');
    show('view', { ...res, data: null });
    // The time changes from run to run: its type is what is compared.
    for (const r of res.data || []) console.log(JSON.stringify({ ...r, analyzed_at: typeof r.analyzed_at }));
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`usage: check.mjs ${Object.keys(scenarios).join('|')}`);
  process.exit(64);
}
await scenarios[name]();
