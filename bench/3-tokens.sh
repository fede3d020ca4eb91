#!/usr/bin/env bash
# bench/3-tokens.sh: input tokens per message, packed against single.
# The same 100 messages through dt-fanout (MAX_WORKERS=2) with DT_PACK=1,
# then DT_PACK=10.  The input tokens are counted on the stand-in's request
# log, by the stand-in's own count (its ntokens() of the instructions,
# the input and the schema of every call answered 200), so the figure
# does not rest on how dt splits usage across a group.  Figure: packed
# input tokens per message, target at most a quarter of single's.
# BENCH_TOKENS_MESSAGES changes the 100.
# shellcheck source=bench/common.bash
. "$(dirname "$0")/common.bash"

n=${BENCH_TOKENS_MESSAGES:-100}
export MAX_WORKERS=2 DT_RPM=0
note=$(pack_note)

standin_start
records "$n" >"$work/in"

# input_tokens LOG: the input tokens of the calls answered 200 in LOG.
input_tokens() {
	"$py" - "$root/t/stack/perplexity-standin" "$1" <<'PY'
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("perplexity_standin", sys.argv[1])
spec = importlib.util.spec_from_loader(loader.name, loader)
s = importlib.util.module_from_spec(spec)
loader.exec_module(s)
total = 0
for line in open(sys.argv[2], encoding="utf-8"):
    r = json.loads(line)
    if r.get("status") != 200 or not isinstance(r.get("json"), dict):
        continue
    agent = r["path"].split("?")[0] in s.AGENT_PATHS
    text, instr, schema, _, _ = (s.check_agent if agent else s.check_chat)(r["json"])
    total += s.ntokens(instr) + s.ntokens(text) + \
        (s.ntokens(s.schema_key(schema)) if schema is not None else 0)
print(total)
PY
}

# tokens PACK: runs the messages with DT_PACK=PACK; sets per (input
# tokens per message analysed), calls and done.
tokens() {
	standin '{}'
	DT_PACK=$1 "$root/analyze/dt-fanout" <"$work/in" >"$work/out" 2>"$work/err" ||
		say "DT_PACK=$1: dt-fanout exited $?: $(tail -1 "$work/err")"
	done=$(jq -r 'select(.analysis) | .id' "$work/out" | sort -u | wc -l)
	standin_requests >"$work/log"
	calls=$(jq -s 'map(select(.status == 200)) | length' "$work/log")
	local t
	t=$(input_tokens "$work/log")
	per=$(calc 'd ? int(t / d + 0.5) : 0' t="$t" d="$done")
	say "DT_PACK=$1: $done of $n messages analysed in $calls calls, $t input tokens, $per a message"
}

tokens 1
single=$per
single_done=$done
tokens 10
figure "input tokens per message, packed (DT_PACK=10)" "$per" tokens \
	"<= 1/4 of single ($(calc 's / 4' s="$single"))" \
	"$(holds 'p * 4 <= s && d == n && e == n' p="$per" s="$single" d="$done" e="$single_done" n="$n")" \
	"$(jq -nc --argjson x "$note" --argjson s "$single" --argjson c "$calls" '$x + {single: $s, calls: $c}')"
figure "input tokens per message, single (DT_PACK=1)" "$single" tokens "" null
