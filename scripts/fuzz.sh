#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, each for a set time, and
# reports each target's exec count and whether it found a failing input.
#
#   scripts/fuzz.sh [-j N] [DURATION]
#
# DURATION is a go test -fuzztime value per target (default 10m). With
# -j 1 (the default) the targets run one after another, each with as many
# workers as CPUs; with -j N, N run at a time with one worker each
# (-parallel 1), which on a 2-core machine halves the wall time of a
# campaign at the same total exec count.
#
# Environment: FUZZ_MINIMIZE (default 2s), the -fuzzminimizetime of each
# run, short so that minimizing a new interesting input never stalls the
# campaign; FUZZ_LOG_DIR (default a new temporary directory) for each
# target's output; FUZZ_PKGS (default ./...) the packages to search.
#
# Exit status: 0 if every target ran its time without failing, 1 if any
# failed (a failing input is then under the package's testdata/fuzz/), 2 on
# a usage error, 130 if interrupted. On SIGINT or SIGTERM every running
# go test, its test binary and its fuzz workers are killed, by process
# group, before the script exits.
set -euo pipefail

usage() {
	echo "usage: $0 [-j N] [DURATION]   (DURATION: go test -fuzztime, default 10m)" >&2
	exit 2
}

jobs=1
while getopts "j:h" opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -le 1 ]] || usage
duration=${1:-10m}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage
minimize=${FUZZ_MINIMIZE:-2s}
read -ra pkgs <<<"${FUZZ_PKGS:-./...}"

cd "$(dirname "$0")/.."
logdir=${FUZZ_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/go-metro-fuzz.XXXXXX")}
mkdir -p "$logdir"

# Every target as "package target": the func FuzzXxx(f *testing.F) of each
# package's test files (those that go list selects for this platform).
targets=()
declare -A dir_of=()
while read -r pkg dir rest; do
	[[ -n $rest ]] || continue
	read -ra files <<<"$rest"
	while read -r name; do
		[[ -n $name ]] && targets+=("$pkg $name") && dir_of["$pkg $name"]=${dir#"$PWD"/}
	done < <(cd "$dir" && sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)([A-Za-z0-9_]* \*testing\.F).*/\1/p' "${files[@]}" | sort -u)
done < <(go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' "${pkgs[@]}")
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz.sh: no fuzz targets found in ${pkgs[*]}" >&2
	exit 1
fi

parallel=()
if [[ $jobs -gt 1 ]]; then
	parallel=(-parallel 1)
fi

declare -A pgid_of=() # running target -> process group
declare -A log_of=()
declare -A status_of=()

# shellcheck disable=SC2317 # the trap handlers below are called indirectly
# kill_running kills the process group of every running target: TERM,
# then KILL for what is left after 5 s.
kill_running() {
	local t pg
	for t in "${!pgid_of[@]}"; do
		kill -TERM -- "-${pgid_of[$t]}" 2>/dev/null || true
	done
	for t in "${!pgid_of[@]}"; do
		pg=${pgid_of[$t]}
		for _ in $(seq 50); do
			kill -0 -- "-$pg" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pg" 2>/dev/null || true
		wait "$pg" 2>/dev/null || true
		unset "pgid_of[$t]"
	done
}

# shellcheck disable=SC2317
interrupted() {
	trap - INT TERM
	kill_running
	echo "fuzz.sh: interrupted; killed the running targets (logs in $logdir)" >&2
	exit 130
}
trap interrupted INT TERM
trap kill_running EXIT

# start starts target t, "package name", in the background.
start() {
	local pkg name log
	read -r pkg name <<<"$1"
	log="$logdir/$(basename "$pkg")-$name.log"
	log_of["$1"]=$log
	echo "fuzz.sh: $name ($pkg) for $duration, log $log"
	# Each go test runs in its own process group (set -m while it
	# starts), so that one kill reaches go, the test binary and its fuzz
	# workers, and a Ctrl-C at the terminal reaches only this script.
	set -m
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" \
		-fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg" >"$log" 2>&1 &
	pgid_of["$1"]=$!
	set +m
}

# finish waits for the target t and records its exit status.
finish() {
	local t=$1 rc=0
	wait "${pgid_of[$t]}" || rc=$?
	unset "pgid_of[$t]"
	status_of["$t"]=$rc
}

# Run the targets, at most $jobs at a time.
queue=("${targets[@]}")
while [[ ${#queue[@]} -gt 0 || ${#pgid_of[@]} -gt 0 ]]; do
	while [[ ${#queue[@]} -gt 0 && ${#pgid_of[@]} -lt $jobs ]]; do
		start "${queue[0]}"
		queue=("${queue[@]:1}")
	done
	# Wait for whichever running target ends first.
	wait -n || true
	for t in "${!pgid_of[@]}"; do
		if ! kill -0 "${pgid_of[$t]}" 2>/dev/null; then
			finish "$t"
		fi
	done
done

# Report: the last exec count each target printed, and its failures.
failed=0
printf '\n%-40s %-12s %14s  %s\n' TARGET PACKAGE EXECS RESULT
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log=${log_of[$t]}
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
	crashers=$(grep -o 'Failing input written to [^ ]*' "$log" | sed "s|Failing input written to |${dir_of[$t]}/|" | tr '\n' ' ' || true)
	if [[ ${status_of[$t]} -eq 0 ]]; then
		result=ok
	else
		failed=1
		result="FAIL (exit ${status_of[$t]})"
		if [[ -n $crashers ]]; then
			result+=" new crasher: $crashers"
		else
			result+=", see $log"
		fi
	fi
	printf '%-40s %-12s %14s  %s\n' "$name" "$(basename "$pkg")" "${execs:-?}" "$result"
done
echo "logs: $logdir"
exit $failed
