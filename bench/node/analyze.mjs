#!/usr/bin/env node
// bench/node/analyze.mjs: the plain Node.js way to do dt-analyze's job,
// the benchmark's comparison: Perplexity's official SDK
// (@perplexity-ai/perplexity_ai) and p-limit, nothing else.
//
//   node bench/node/analyze.mjs <records.ndjson >analyzed.ndjson
//
// Reads NDJSON records ({"id": ..., "text": ...}, as dt-fetch writes them)
// from stdin, sends each text to the Agent API (POST /v1/responses) with
// the same instructions, markers, schema and output limit dt-analyze
// sends, at most MAX_WORKERS (default 5) calls at a time, and writes each
// record with its "analysis" (or its "error") to stdout.  The SDK retries
// as it does by default.  Reads PERPLEXITY_API_KEY, PERPLEXITY_BASE_URL,
// DT_PROMPT_FILE, DT_SCHEMA_FILE, DT_MODEL (perplexity/sonar).  Exits 1
// when any record failed.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import Perplexity from '@perplexity-ai/perplexity_ai';
import pLimit from 'p-limit';

const env = process.env;
const instructions = readFileSync(env.DT_PROMPT_FILE, 'utf8');
const schema = JSON.parse(readFileSync(env.DT_SCHEMA_FILE, 'utf8'));
const model = env.DT_MODEL || 'perplexity/sonar';
const client = new Perplexity({
  apiKey: env.PERPLEXITY_API_KEY,
  baseURL: env.PERPLEXITY_BASE_URL,
});
const limit = pLimit(Number(env.MAX_WORKERS || 5));

async function analyze(record) {
  const mark = `dt-data-${randomBytes(6).toString('hex')}`;
  const res = await client.responses.create({
    model,
    instructions,
    input: `<${mark}>\n${record.text}\n</${mark}>`,
    response_format: { type: 'json_schema', json_schema: { name: 'analysis', schema } },
    max_output_tokens: 1024,
  });
  const msg = res.output.find((o) => o.type === 'message');
  const text = msg.content.find((c) => c.type === 'output_text').text;
  return { ...record, analysis: JSON.parse(text), usage: res.usage };
}

let failed = 0;
const jobs = [];
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  const record = JSON.parse(line);
  jobs.push(limit(() => analyze(record).then(
    (out) => process.stdout.write(JSON.stringify(out) + '\n'),
    (err) => {
      failed++;
      process.stdout.write(JSON.stringify({ ...record, error: String(err.message || err) }) + '\n');
    })));
}
await Promise.all(jobs);
process.exitCode = failed ? 1 : 0;
