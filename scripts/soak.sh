#!/usr/bin/env bash
# soak.sh runs the README's test command N times on a fresh clone of the
# committed HEAD, each time with empty Go module and build caches, and
# prints pass or fail for each run with the names of the tests that failed.
#
#   scripts/soak.sh [--busy] [--lock FILE] N
#
# Each run is the README's command, `go test -p 1 -race ./...`, then
# `go test -race ./...` in the e2e and packaging modules, with CI=true
# (privileged tests fail instead of skipping), GOMODCACHE and GOCACHE in
# new temporary folders and GOFLAGS=-modcacherw so that they can be
# removed. Each module runs even when one before it failed, so that a run
# reports every failure; the run passes if all pass. It needs what the
# tests need: root, iproute2, iputils ping, tcpdump, tshark and the Debian
# package's tools (.ci/run installs them).
#
# --busy keeps one CPU busy with a low-priority loop (nice 19) during the
# runs, as another job on the machine would. --lock FILE holds an flock(1)
# lock on FILE during each run, and not between runs, so that the runs take
# turns with other timing-sensitive jobs on a shared machine.
#
# Output: a line per run, "run I/N: pass (DURATION)" or "run I/N: FAIL
# (DURATION): TEST...", then a summary. The logs of the runs stay in a
# directory that the script names. Exit status: 0 if every run passed, 1 if
# any failed, 2 on a usage error.
set -euo pipefail

usage() {
	echo "usage: $0 [--busy] [--lock FILE] N" >&2
	exit 2
}

busy=false
lock=""
runs=""
while [ $# -gt 0 ]; do
	case "$1" in
	--busy) busy=true ;;
	--lock)
		[ $# -ge 2 ] || usage
		lock="$2"
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[ -z "$runs" ] || usage
		runs="$1"
		;;
	esac
	shift
done
case "$runs" in
'' | *[!0-9]* | 0) usage ;;
esac
if [ -n "$lock" ] && ! command -v flock >/dev/null; then
	echo "soak: --lock needs flock(1), from util-linux" >&2
	exit 2
fi

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
sha=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
	echo "soak: $root has uncommitted changes; the soak tests the committed HEAD, $sha" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/go-metro-soak.XXXXXX")
logs=$(mktemp -d "${TMPDIR:-/tmp}/go-metro-soak-logs.XXXXXX")
busy_pid=""
cleanup() {
	if [ -n "$busy_pid" ]; then
		kill "$busy_pid" 2>/dev/null || true
		wait "$busy_pid" 2>/dev/null || true
	fi
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

src="$work/src"
git clone --quiet --no-checkout "$root" "$src"
if ! git -C "$src" cat-file -e "$sha^{commit}" 2>/dev/null; then
	git -C "$src" fetch --quiet "$root" "$sha"
fi
git -C "$src" -c advice.detachedHead=false checkout --quiet --detach "$sha"
echo "soak: $runs runs of the README's test command on $sha, in $src; logs in $logs"

if $busy; then
	nice -n 19 bash -c 'while :; do :; done' &
	busy_pid=$!
	echo "soak: one CPU kept busy by a nice 19 loop (pid $busy_pid)"
fi

# run_once runs the README's test command in $src with fresh caches under
# $1, its output to $2; it returns non-zero if either part failed.
run_once() {
	local cache=$1 log=$2
	mkdir -p "$cache/mod" "$cache/build"
	(
		cd "$src"
		export CI=true GOMODCACHE="$cache/mod" GOCACHE="$cache/build" GOFLAGS="-modcacherw${GOFLAGS:+ $GOFLAGS}"
		rc=0
		go test -p 1 -race ./... || rc=1
		(cd e2e && go test -race ./...) || rc=1
		(cd packaging && go test -race ./...) || rc=1
		exit $rc
	) >"$log" 2>&1
}

failed=0
for i in $(seq 1 "$runs"); do
	cache="$work/cache$i"
	log="$logs/run$i.log"
	start=$(date +%s)
	rc=0
	if [ -n "$lock" ]; then
		export -f run_once
		export src
		flock "$lock" bash -c 'run_once "$0" "$1"' "$cache" "$log" || rc=$?
	else
		run_once "$cache" "$log" || rc=$?
	fi
	took=$(($(date +%s) - start))
	chmod -R u+w "$cache" 2>/dev/null || true
	rm -rf "$cache"
	if [ "$rc" -eq 0 ]; then
		echo "run $i/$runs: pass (${took}s)"
		continue
	fi
	failed=$((failed + 1))
	# The failed tests, each with up to three of its deepest failed
	# subtests, then the packages that failed (a package can fail without
	# a failed test: a build error, a panic, a timeout).
	tests=$(grep -oE -- '--- FAIL: [^ ]+' "$log" | sed 's/--- FAIL: //' | sort -u | awk '
		{ name[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				n = name[i]; top = n; sub(/\/.*/, "", top)
				if (n == top) { order[++tops] = top; continue }
				leaf = 1
				for (j = 1; j <= NR; j++) if (index(name[j], n "/") == 1) leaf = 0
				if (!leaf) continue
				count[top]++
				if (count[top] <= 3) list[top] = list[top] (count[top] > 1 ? ", " : "") substr(n, length(top) + 2)
			}
			for (k = 1; k <= tops; k++) {
				t = order[k]; out = t
				if (count[t] > 0) out = out " (" list[t] (count[t] > 3 ? " and " count[t] - 3 " more" : "") ")"
				printf "%s%s", (k > 1 ? "; " : ""), out
			}
		}')
	pkgs=$(grep -E '^FAIL[[:space:]]+[^[:space:]]+' "$log" | awk '{print $2}' | sort -u | tr '\n' ' ')
	echo "run $i/$runs: FAIL (${took}s): ${tests:-no failed test}; packages: ${pkgs:-none}; log $log"
done
echo "soak: $((runs - failed)) of $runs runs passed"
[ "$failed" -eq 0 ]
