#!/usr/bin/env bash
# install.sh adds the go_metro core check to a datadog-agent checkout:
#
#   - copies agent/go_metro.go, without its `//go:build ignore` line, to
#     pkg/collector/corechecks/net/gometro/gometro.go;
#   - requires github.com/go-metro/go-metro in the checkout's go.mod and
#     replaces it with this repository (a local path);
#   - registers the check in pkg/commonchecks/corechecks.go;
#   - for the Agent's Bazel build, when pkg/commonchecks/BUILD.bazel exists:
#     writes pkg/collector/corechecks/net/gometro/BUILD.bazel (a go_library
#     whose deps are the adapter's imports) and adds its target to the deps
#     of pkg/commonchecks/BUILD.bazel;
#   - copies conf.d/go_metro.d/conf.yaml.example to
#     cmd/agent/dist/conf.d/go_metro.d/conf.yaml.example, where the Agent's
#     packages take the example configurations of core checks from.
#
# Running it again updates the adapter, its BUILD.bazel, the example and the
# replace directive, and adds nothing twice. It does not build anything: it
# prints the next steps.
#
# Usage: agent/install.sh AGENT_CHECKOUT [GO_METRO_REPO]
#
# GO_METRO_REPO defaults to the repository this script is in.
set -euo pipefail

export LC_ALL=C # byte order for comparing import paths, as gofmt sorts them

prog=install.sh
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	printf 'usage: %s AGENT_CHECKOUT [GO_METRO_REPO]\n' "$0" >&2
	exit 2
fi

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
agent=$(cd "$1" 2>/dev/null && pwd) || die "open datadog-agent checkout $1: no such directory"
repo_arg=${2:-$script_dir/..}
repo=$(cd "$repo_arg" 2>/dev/null && pwd) || die "open go-metro repository $repo_arg: no such directory"

module=github.com/go-metro/go-metro
agent_module=github.com/DataDog/datadog-agent
adapter_src=$repo/agent/go_metro.go
adapter_rel=pkg/collector/corechecks/net/gometro/gometro.go
adapter_dst=$agent/$adapter_rel
adapter_import=$agent_module/pkg/collector/corechecks/net/gometro
registry_rel=pkg/commonchecks/corechecks.go
registry=$agent/$registry_rel
checkbase=$agent/pkg/collector/corechecks/checkbase.go
build_rel=pkg/collector/corechecks/net/gometro/BUILD.bazel
build_dst=$agent/$build_rel
build_target=//pkg/collector/corechecks/net/gometro
registry_build_rel=pkg/commonchecks/BUILD.bazel
registry_build=$agent/$registry_build_rel
# go-metro as an external repository of the Agent's Bazel build: the name
# gazelle's go_deps gives the module github.com/go-metro/go-metro.
metro_repo=com_github_go_metro_go_metro
example_src=$repo/conf.d/go_metro.d/conf.yaml.example
example_rel=cmd/agent/dist/conf.d/go_metro.d/conf.yaml.example
example_dst=$agent/$example_rel

# modpath prints the module path of a go.mod.
modpath() { awk '$1 == "module" { gsub(/"/, "", $2); print $2; exit }' "$1"; }
# goline prints the go version of a go.mod.
goline() { awk '$1 == "go" { print $2; exit }' "$1"; }

command -v go >/dev/null 2>&1 || die "find go: not in PATH; install Go and run again"

# The go-metro repository.
if [ ! -f "$repo/go.mod" ] || [ "$(modpath "$repo/go.mod")" != "$module" ]; then
	die "$repo is not the go-metro repository: want a go.mod with module $module"
fi
[ -f "$adapter_src" ] || die "read the adapter: $adapter_src is missing"
[ "$(head -n 1 "$adapter_src")" = "//go:build ignore" ] ||
	die "read the adapter: the first line of $adapter_src must be //go:build ignore"

# The datadog-agent checkout.
[ -f "$agent/go.mod" ] ||
	die "$agent is not a datadog-agent checkout: it has no go.mod (clone https://github.com/DataDog/datadog-agent)"
got=$(modpath "$agent/go.mod")
[ "$got" = "$agent_module" ] ||
	die "$agent is not a datadog-agent checkout: its go.mod is module ${got:-<none>}, want $agent_module"
[ -f "$registry" ] ||
	die "$agent is not a datadog-agent checkout this script knows: $registry_rel, where core checks are registered, is missing"
grep -q '^func RegisterChecks(' "$registry" ||
	die "$registry_rel has no func RegisterChecks: register gometro.Factory() by hand"
[ -d "$agent/pkg/collector/corechecks" ] ||
	die "$agent is not a datadog-agent checkout this script knows: pkg/collector/corechecks is missing"
[ -d "$agent/pkg/util/option" ] ||
	die "$agent is older than the Agent API the adapter supports (no pkg/util/option): use Agent 7.78 or later"

# The Agent's check API: since Agent 7.78, Configure and CommonConfigure
# take the config provider; before, they do not.
provider=yes
if [ -f "$checkbase" ]; then
	sig=$(grep -m 1 '^func (c \*CheckBase) CommonConfigure(' "$checkbase" || true)
	case $sig in
	'') echo "$prog: note: no CommonConfigure in ${checkbase#"$agent"/}; assuming it takes the config provider" ;;
	*integrationConfigDigest*) die "$agent is older than the Agent API the adapter supports (CommonConfigure takes the config digest): use Agent 7.78 or later" ;;
	*provider*) ;;
	*) provider=no ;;
	esac
fi

# Everything is prepared in a temporary directory and checked first, so
# that a checkout this script cannot handle is left as it was.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The adapter, without its build constraint and the blank line after it.
{
	echo "// Code copied from $module agent/go_metro.go by agent/install.sh. Edit it there and run install.sh again."
	echo
	awk 'NR == 1 { next } NR == 2 && $0 == "" { next } { print }' "$adapter_src"
} >"$work/gometro.go"
if [ "$provider" = no ]; then
	# Agents before 7.78: no provider argument.
	sed -e 's/, source string, provider string)/, source string)/' -e 's/, source, provider)/, source)/' "$work/gometro.go" >"$work/new"
	mv "$work/new" "$work/gometro.go"
	if grep -v '^[[:space:]]*//' "$work/gometro.go" | grep 'provider string\|, provider)' >/dev/null; then
		die "adapt the adapter to an Agent without config provider: a provider argument is left in it"
	fi
fi

# 2. Registration: the import, in its sorted place among the checkout's own
# imports, and the call, after the ntp check's. Each is added only if absent.
loader=$(awk -v p="\"$agent_module/pkg/collector/corechecks\"" '
	$NF == p { print (NF == 2 ? $1 : "corechecks"); exit }' "$registry")
[ -n "$loader" ] || die "$registry_rel does not import $agent_module/pkg/collector/corechecks: register gometro.Factory() by hand"
call="	$loader.RegisterCheck(gometro.CheckName, gometro.Factory())"
cp "$registry" "$work/corechecks.go"
if ! grep -q "^[[:space:]]*\"$adapter_import\"\$" "$work/corechecks.go"; then
	awk -v imp="\"$adapter_import\"" -v prefix="\"$agent_module/" '
		# In an import block: before the first import of the Agent that
		# sorts after ours, else after the last import of the Agent.
		{ lines[NR] = $0 }
		/^import \($/ { inblock = 1; next }
		inblock && /^\)$/ { inblock = 0 }
		inblock && index($NF, prefix) == 1 {
			if (!before && $NF > imp) { before = NR }
			last = NR
		}
		END {
			if (!before && !last) { exit 1 }
			for (i = 1; i <= NR; i++) {
				if (i == before) { print "\t" imp }
				print lines[i]
				if (!before && i == last) { print "\t" imp }
			}
		}' "$work/corechecks.go" >"$work/new" ||
		die "$registry_rel: found no import of $agent_module to add $adapter_import after: add it by hand"
	mv "$work/new" "$work/corechecks.go"
fi
if ! grep -qF "$call" "$work/corechecks.go"; then
	awk -v call="$call" -v loader="$loader" '
		{ lines[NR] = $0 }
		# After the ntp check, else after the first one-line RegisterCheck.
		index($0, "\t" loader ".RegisterCheck(ntp.CheckName, ") == 1 { ntp = NR }
		!first && index($0, "\t" loader ".RegisterCheck(") == 1 && $0 ~ /\)\)$/ { first = NR }
		END {
			at = ntp ? ntp : first
			if (!at) { exit 1 }
			for (i = 1; i <= NR; i++) {
				print lines[i]
				if (i == at) { print call }
			}
		}' "$work/corechecks.go" >"$work/new" ||
		die "$registry_rel: found no RegisterCheck call to add ours after: add \"$call\" to RegisterChecks by hand"
	mv "$work/new" "$work/corechecks.go"
fi

# Both must parse.
gofmt=$(command -v gofmt || echo "$(go env GOROOT)/bin/gofmt")
"$gofmt" -e -l "$work/gometro.go" >/dev/null || die "parse the adapter: gofmt -e reports errors"
"$gofmt" -e -l "$work/corechecks.go" >/dev/null || die "parse $registry_rel after the edit: gofmt -e reports errors"

# 3. Bazel, for checkouts that build with it (every package has a
# BUILD.bazel): the adapter's go_library, modeled on net/ntp's, and its
# target in the deps of pkg/commonchecks' go_library, in buildifier's
# order. Its deps are the adapter's imports: the Agent's packages by their
# label, go-metro's by its external repository.
bazel=no
if [ -f "$registry_build" ]; then
	bazel=yes
	deps=$(awk '
		/^import \($/ { inblock = 1; next }
		inblock && /^\)$/ { exit }
		inblock && NF > 0 { p = $NF; gsub(/"/, "", p); print p }' "$work/gometro.go" |
		while read -r imp; do
			case $imp in
			"$agent_module"/*) echo "//${imp#"$agent_module"/}" ;;
			"$module"/*) echo "@$metro_repo//${imp#"$module"/}" ;;
			*.*/*) die "write $build_rel: the adapter imports $imp, which has no Bazel label here: add it to the deps by hand" ;;
			*) ;; # the standard library
			esac
		done | sort -u) || exit 1
	[ -n "$deps" ] || die "write $build_rel: found no imports in the adapter"
	{
		echo "# Generated by $module agent/install.sh, with the adapter next to it. Edit it there and run install.sh again."
		echo 'load("@rules_go//go:def.bzl", "go_library")'
		echo
		echo 'go_library('
		echo '    name = "gometro",'
		echo '    srcs = ["gometro.go"],'
		echo "    importpath = \"$adapter_import\","
		echo '    visibility = ["//visibility:public"],'
		echo '    deps = ['
		printf '        "%s",\n' $deps
		echo '    ],'
		echo ')'
	} >"$work/BUILD.bazel"

	cp "$registry_build" "$work/commonchecks.BUILD.bazel"
	awk -v dep="$build_target" '
		function label(line,   v) { v = line; gsub(/^[[:space:]]*"|",?[[:space:]]*$/, "", v); return v }
		{ lines[NR] = $0 }
		/^go_library\($/ && !done { inlib = 1 }
		inlib && /^\)/ { inlib = 0; done = 1 }
		inlib && /^    deps = \[$/ { indeps = 1; found = 1; next }
		indeps && /^    \]/ { indeps = 0; closing = NR; next }
		indeps {
			l = label($0)
			if (l == dep) { present = 1 }
			if (substr(l, 1, 2) == "//") {
				if (!before && l > dep) { before = NR }
				lastslash = NR
			} else if (substr(l, 1, 1) == "@" && !firstat) { firstat = NR }
			indent = $0; sub(/[^[:space:]].*$/, "", indent)
		}
		END {
			if (!found || !closing) { exit 2 }
			if (present) { at = 0 }
			else if (before) { at = before }
			else if (lastslash) { at = lastslash + 1 }
			else if (firstat) { at = firstat }
			else { at = closing }
			if (indent == "") { indent = "        " }
			for (i = 1; i <= NR; i++) {
				if (i == at) { print indent "\"" dep "\"," }
				print lines[i]
			}
		}' "$work/commonchecks.BUILD.bazel" >"$work/new" ||
		die "$registry_build_rel: found no deps list in its go_library: add \"$build_target\" to it by hand"
	mv "$work/new" "$work/commonchecks.BUILD.bazel"
fi

# 4. The example configuration, where core checks ship theirs (ntp's is
# cmd/agent/dist/conf.d/ntp.d/conf.yaml.default). As conf.yaml.example,
# not .default: go_metro must not run on every Agent that has it.
[ -f "$example_src" ] || die "read the example configuration: $example_src is missing"

# Write them, and go.mod: require this module, replaced by this repository.
# go mod edit replaces an existing require or replace of the same module.
mkdir -p "$(dirname "$adapter_dst")"
cp "$work/gometro.go" "$adapter_dst"
if [ "$bazel" = yes ]; then
	cp "$work/BUILD.bazel" "$build_dst"
	cmp -s "$work/commonchecks.BUILD.bazel" "$registry_build" || cat "$work/commonchecks.BUILD.bazel" >"$registry_build"
fi
mkdir -p "$(dirname "$example_dst")"
cp "$example_src" "$example_dst"
(cd / && GOWORK=off GOFLAGS="" go mod edit -require="$module@v0.0.0" -replace="$module=$repo" "$agent/go.mod") ||
	die "edit $agent/go.mod: go mod edit failed"
cmp -s "$work/corechecks.go" "$registry" || cat "$work/corechecks.go" >"$registry"

# Report.
cat <<EOF
go_metro is installed in $agent:
  $adapter_rel  (the adapter$([ "$provider" = no ] && echo ", for an Agent before 7.78"))
  $registry_rel  ($loader.RegisterCheck(gometro.CheckName, ...))
EOF
if [ "$bazel" = yes ]; then
	cat <<EOF
  $build_rel  (go_library gometro, for Bazel)
  $registry_build_rel  ("$build_target" in the deps of its go_library)
EOF
fi
cat <<EOF
  $example_rel  (the example configuration, shipped with the Agent)
  go.mod  (require $module v0.0.0, replaced by $repo)
EOF
agent_go=$(goline "$agent/go.mod")
ours=$(goline "$repo/go.mod")
if [ -n "$agent_go" ] && [ -n "$ours" ] && [ "$(printf '%s\n%s\n' "$agent_go" "$ours" | sort -V | head -n 1)" != "$ours" ]; then
	echo
	echo "note: the checkout is at go $agent_go and $module needs go $ours: go mod tidy raises the checkout's go line; build with Go $ours or later."
fi
if [ -f "$agent/go.work" ]; then
	echo
	echo "note: $agent has a go.work; if it replaces $module too, that replace wins over go.mod's."
fi
if [ "$bazel" = yes ]; then
	cat <<EOF

note: Bazel does not follow go.mod's local replace. For a Bazel build, require a
released go-metro instead, as for every other dependency (see agent/README.md):
  go mod edit -dropreplace=$module && go get $module@VERSION && go mod tidy
  bazel mod tidy                                # adds $metro_repo to use_repo(go_deps, ...)
EOF
fi
cat <<EOF

Next steps, in $agent:
  go mod tidy                                   # go.sum entries for go-metro's dependencies
  dda inv agent.build --build-exclude=systemd   # older checkouts: invoke agent.build --build-exclude=systemd
  sudo setcap cap_net_raw+ep bin/agent/agent    # go_metro opens an AF_PACKET socket; the Agent runs unprivileged
  sudo mkdir -p /etc/datadog-agent/conf.d/go_metro.d
  sudo cp bin/agent/dist/conf.d/go_metro.d/conf.yaml.example /etc/datadog-agent/conf.d/go_metro.d/conf.yaml
                                                # set interface (or use the confd_path of your datadog.yaml)
  bin/agent/agent check go_metro -t 2 --pause 15000
                                                # two runs, 15 s apart: the capture starts in the first
  bin/agent/agent run -c bin/agent/dist/datadog.yaml
  bin/agent/agent status                        # the go_metro section: metric samples, service checks, Warning: lines
EOF
