# shellcheck shell=bash
# lib/log.sh: lib/log.c's log lines for dt's scripts (dt-entrypoint,
# dt-fanout), sourced by them from share/dt/log.sh, and the ranking of
# exit statuses.  Its own names start with dt_log, dt_exit or _dt_, and
# its locals are not the scripts' (prog is).
#
#   dt_log PROG LEVEL MESSAGE   one line on stderr: "PROG: LEVEL: MESSAGE",
#                               or under DT_LOG_FORMAT=json one JSON object
#                               {"ts","prog","level","msg"} as the stages
#                               write them; DT_LOG_LEVEL holds it back as
#                               it holds back theirs
#   dt_log_relay PROG           copies stdin to stderr line by line: under
#                               DT_LOG_FORMAT=json a JSON object goes on as
#                               it is, "name: level: text" (GNU parallel's
#                               "parallel: Warning: ...") becomes a line of
#                               name at that level, "name: text" a line of
#                               name at level error, any other line (a
#                               shell's, a crash's) a line of PROG; in the
#                               text format every line goes on as it came
#   dt_exit_worst STATUS...     prints the most severe of the exit
#                               statuses, ranked by exit.def beside this
#                               file (the table lib/cli.c is built from);
#                               78 and an error line when it cannot be read
#
# Every configured secret (the variables lib/config.c registers, and the
# files their *_FILE variants name) is replaced by *** in what is written.

# _dt_log_level WORD: sets REPLY to the level's number (0 error ... 4
# trace), as lib/log.c reads DT_LOG_LEVEL; returns 1 for another word.
_dt_log_level() {
	case ${1,,} in
	error | 0) REPLY=0 ;;
	warn | warning | 1) REPLY=1 ;;
	info | 2) REPLY=2 ;;
	debug | 3) REPLY=3 ;;
	trace | 4) REPLY=4 ;;
	*) return 1 ;;
	esac
}

_dt_log_names=(error warning info debug trace)

# _dt_log_secrets: the configured secrets, once.
_dt_log_secrets() {
	local v f s
	[ -z "${_dt_log_secret_list+set}" ] || return 0
	_dt_log_secret_list=()
	# The names of dt_config_register_secrets() in lib/config.c.
	for v in SUPABASE_KEY SUPABASE_ANON_KEY SUPABASE_PUBLISHABLE_KEY \
		SUPABASE_SERVICE_ROLE_JWT PERPLEXITY_API_KEY TELEGRAM_BOT_TOKEN; do
		f=${v}_FILE
		s=''
		if [ -n "${!f:-}" ] && [ -r "${!f}" ]; then
			s=$(cat -- "${!f}" 2>/dev/null) || s=''
		fi
		# As lib/log.c: values shorter than 4 bytes are not secrets.
		for s in "${!v:-}" "$s"; do
			[ "${#s}" -lt 4 ] || _dt_log_secret_list+=("$s")
		done
	done
}

# _dt_log_json STRING: sets REPLY to STRING as a JSON string.
_dt_log_json() {
	local s=$1 out='' c i
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	s=${s//$'\n'/\\n}
	if [[ $s == *[$'\001'-$'\037']* ]]; then
		for ((i = 0; i < ${#s}; i++)); do
			c=${s:i:1}
			case $c in
			[$'\001'-$'\037']) printf -v c '\\u%04x' "'$c" ;;
			esac
			out+=$c
		done
		s=$out
	fi
	REPLY=\"$s\"
}

# _dt_log_line PROG LEVEL-NUMBER MESSAGE: writes the line.
_dt_log_line() {
	local who=$1 l=$2 msg=$3 limit=2 s t ms ts
	if [ -n "${DT_LOG_LEVEL:-}" ] && _dt_log_level "$DT_LOG_LEVEL"; then
		limit=$REPLY
	fi
	[ "$l" -le "$limit" ] || return 0
	_dt_log_secrets
	for s in "${_dt_log_secret_list[@]}"; do
		msg=${msg//"$s"/***}
	done
	if [ "${DT_LOG_FORMAT:-text}" != json ]; then
		printf '%s: %s: %s\n' "$who" "${_dt_log_names[l]}" "$msg" >&2
		return 0
	fi
	t=${EPOCHREALTIME/[.,]/}
	ms=${t: -6:3}
	TZ=UTC0 printf -v ts '%(%Y-%m-%dT%H:%M:%S)T' "${t:0:${#t}-6}"
	_dt_log_json "$msg"
	printf '{"ts":"%s.%sZ","prog":"%s","level":"%s","msg":%s}\n' \
		"$ts" "$ms" "$who" "${_dt_log_names[l]}" "$REPLY" >&2
}

dt_log() {
	local who=$1
	_dt_log_level "$2" || REPLY=0
	shift 2
	_dt_log_line "$who" "$REPLY" "$*"
}

dt_log_relay() {
	local who=$1 line name rest re_name='^([A-Za-z0-9_./-]{1,64}): (.*)$' \
		re_level='^([A-Za-z]{1,15}):[[:space:]]*(.*)$'
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		if [ "${DT_LOG_FORMAT:-text}" != json ]; then
			printf '%s\n' "$line" >&2
			continue
		fi
		case $line in
		'{'*'}')
			printf '%s\n' "$line" >&2
			continue
			;;
		esac
		if [[ $line =~ $re_name ]]; then
			name=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
			if [[ $rest =~ $re_level ]] && _dt_log_level "${BASH_REMATCH[1]}"; then
				_dt_log_line "$name" "$REPLY" "${BASH_REMATCH[2]}"
			else
				_dt_log_line "$name" 0 "$rest"
			fi
		else
			_dt_log_line "$who" 0 "$line"
		fi
	done
}

# The exit statuses, most severe first, as exit.def lists them (-1 for
# any other), once read.
_dt_exit_def=${BASH_SOURCE[0]%/*}/exit.def
_dt_exit_order=()

# _dt_exit_rank STATUS: sets REPLY to the status's severity (higher is
# worse); returns 1 when exit.def cannot be read.
_dt_exit_rank() {
	local line i other=0 n
	if [ "${#_dt_exit_order[@]}" -eq 0 ]; then
		while IFS= read -r line; do
			[[ $line =~ ^DT_SEVERITY\((-?[0-9]+)\) ]] &&
				_dt_exit_order+=("${BASH_REMATCH[1]}")
		done 2>/dev/null <"$_dt_exit_def"
		[ "${#_dt_exit_order[@]}" -gt 0 ] || return 1
	fi
	n=${#_dt_exit_order[@]}
	for ((i = 0; i < n; i++)); do
		REPLY=$((n - i))
		[ "${_dt_exit_order[i]}" != "$1" ] || return 0
		[ "${_dt_exit_order[i]}" != -1 ] || other=$REPLY
	done
	REPLY=$other
}

dt_exit_worst() {
	local s w=0 wr=-1
	for s in "$@"; do
		if ! _dt_exit_rank "$s"; then
			echo "dt_exit_worst: cannot read $_dt_exit_def" >&2
			echo 78
			return
		fi
		if [ "$REPLY" -gt "$wr" ]; then
			w=$s wr=$REPLY
		fi
	done
	echo "$w"
}
