#!/usr/bin/env bash
# bench/run.sh — measures secretd's activation against the way agenix activates, side by side.
#
# Usage (as root; the script re-executes itself in a private mount namespace, and touches only a
# fresh temp dir: never /run/secrets, /etc or the users of the machine):
#
#   bench/install-deps.sh                 # age, ssh-keygen, unshare; sops built into a cache
#   bench/run.sh [--sizes "10 100 1000 10000"] [--baseline-max 1000] [--reps 5]
#                [--out FILE] [--no-sops] [--keep]
#
# Options (each also settable by environment: BENCH_SIZES, BENCH_BASELINE_MAX, BENCH_REPS,
# BENCH_OUT):
#   --sizes         the numbers of secrets N to measure
#   --baseline-max  largest N at which the baseline runs (it takes ~17 ms a secret, ~170 s at
#                   N = 10000); above it the baseline is skipped and the table says so
#   --reps          timed runs per secretd case; the median is reported (the baseline runs
#                   3 times below N = 1000 and once from there up)
#   --out           also write the Markdown report to FILE
#   --no-sops       skip the sops case even when sops is on PATH
#   --keep          keep the work dir (generated keys, files and manifests) for inspection
#
# What it does: builds secretd as a release does (CGO_ENABLED=0, -trimpath, -ldflags='-s -w')
# and reports the binary's size; generates a fresh ssh ed25519 host key and, with the real
# `age -R host.pub`, one agenix-style file per secret (plus re-encrypted copies, new content,
# of 1% of them); and, when `sops` is on PATH (install-deps.sh puts it in
# /var/cache/secretd-bench/bin, which is searched too), one sops YAML file of N keys encrypted to
# the host key's ssh-to-age recipient. For every N it then times:
#   activate      `secretd activate` on a fresh ramfs (unmounted and removed between runs)
#   no change     activation again with the same manifest: decrypt, compare, write nothing
#   1% changed    activation of a manifest where 1% of the files hold new content
#   sops          N secrets taken from the one sops file, on a fresh ramfs
#   baseline      bench/agenix-style.sh: one `age -d` process per secret, chmod, mv, chown,
#                 and the generation symlink swap, on a fresh ramfs
# Each result is checked: the files written must hold the expected plaintext, `secretd status`
# must be healthy, the no-change run must not make a generation and the 1% run must change
# exactly 1% of the secrets (one at N = 10). Wall time is the median of the runs; CPU time is
# user+sys of the process and everything it waited for; peak RSS is the largest resident set
# of any single process (for the baseline, the largest age or shell process), read from
# wait4's rusage by bench/cmd/measure.
set -euo pipefail

sizes=${BENCH_SIZES:-"10 100 1000 10000"}
baseline_max=${BENCH_BASELINE_MAX:-1000}
reps=${BENCH_REPS:-5}
out=${BENCH_OUT:-}
use_sops=1
keep=0
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--baseline-max) baseline_max=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--no-sops) use_sops=0; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" != 0 ]; then
	echo "run.sh: must run as root (it mounts ramfs filesystems in a private mount namespace)" >&2
	exit 1
fi
if [ -z "${SECRETD_BENCH_PRIVATE_NS:-}" ]; then
	exec env SECRETD_BENCH_PRIVATE_NS=1 unshare --mount --propagation private bash "$0" "${args[@]}"
fi
if [ -n "$out" ]; then
	out=$(realpath -m "$out")
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:${SECRETD_BENCH_TOOLS:-/var/cache/secretd-bench}/bin
for tool in age ssh-keygen go unshare; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found: run bench/install-deps.sh" >&2; exit 1; }
done
if [ "$use_sops" = 1 ] && ! command -v sops >/dev/null; then
	echo "run.sh: sops not on PATH: skipping the sops case (bench/install-deps.sh builds it)" >&2
	use_sops=0
fi

work=$(mktemp -d /tmp/secretd-bench.XXXXXX)
cleanup() {
	# Unmount what the runs mounted before removing the tree (deepest first).
	awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
	if [ "$keep" = 1 ]; then
		echo "run.sh: work dir kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
started=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log() { printf '[%4ds] %s\n' $((SECONDS - started)) "$*" >&2; }

# --- build -------------------------------------------------------------------------------------
log "building secretd (release flags) and the benchmark helpers"
mkdir -p "$work/bin"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/bin/secretd" ./cmd/secretd)
(cd "$repo" && go build -o "$work/bin/measure" ./bench/cmd/measure && go build -o "$work/bin/recipient" ./bench/cmd/recipient)
secretd=$work/bin/secretd
measure=$work/bin/measure
binary_size=$(stat -c %s "$secretd")

# --- inputs ------------------------------------------------------------------------------------
max_n=0
for n in $sizes; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: size $n is not a positive number" >&2; exit 2; }
	((n > max_n)) && max_n=$n
done

mkdir -p "$work/host" "$work/plain" "$work/enc" "$work/plain2" "$work/enc2"
host_key=$work/host/ssh_host_ed25519_key
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$host_key"
recipient=$("$work/bin/recipient" "$host_key")

log "encrypting $max_n secrets with age -R host.pub ($(nproc) in parallel)"
# Every secret i gets a file; the indices 1, 101, 201, … (1% of any N >= 100, one of N = 10)
# also get a second file with new content, for the 1%-changed case.
# shellcheck disable=SC2016 # expanded by the bash that xargs starts
encrypt_batch='
for i; do
	printf -v value "pw-%d-%08x%08x%08x%08x" "$i" $SRANDOM $SRANDOM $SRANDOM $SRANDOM
	printf "%s\n" "$value" >"$WORK/plain/s$i"
	age -R "$PUB" -o "$WORK/enc/s$i.age" "$WORK/plain/s$i"
	if (( (i - 1) % 100 == 0 )); then
		printf "%s-changed\n" "$value" >"$WORK/plain2/s$i"
		age -R "$PUB" -o "$WORK/enc2/s$i.age" "$WORK/plain2/s$i"
	fi
done'
seq 1 "$max_n" | WORK=$work PUB=$host_key.pub xargs -P "$(nproc)" -n 250 bash -c "$encrypt_batch" _

# write_inputs N DIR: the manifests (unchanged and 1%-changed), the baseline's list and the
# checksums of the expected outputs. Every tenth secret is owned by nobody:nogroup 0440, the
# others by root:root 0400, so ownership is resolved and set for real.
write_inputs() {
	local n=$1 dir=$2 i owner group mode file changed sep=""
	mkdir -p "$dir"
	{
		printf '{"version":1,"secretsDir":"%s","mountPoint":"%s","identities":["%s"],"secrets":[' \
			"$dir/agefiles/run/secrets" "$dir/agefiles/run/secrets.d" "$host_key"
	} >"$dir/manifest.json"
	cp "$dir/manifest.json" "$dir/manifest-1pct.json"
	: >"$dir/baseline.list"
	for ((i = 1; i <= n; i++)); do
		if ((i % 10 == 0)); then owner=nobody group=nogroup mode=0440; else owner=root group=root mode=0400; fi
		file=$work/enc/s$i.age
		changed=$file
		((i % 100 == 1)) && changed=$work/enc2/s$i.age
		printf '%s{"name":"s%d","file":"%s","owner":"%s","group":"%s","mode":"%s"}' \
			"$sep" "$i" "$file" "$owner" "$group" "$mode" >>"$dir/manifest.json"
		printf '%s{"name":"s%d","file":"%s","owner":"%s","group":"%s","mode":"%s"}' \
			"$sep" "$i" "$changed" "$owner" "$group" "$mode" >>"$dir/manifest-1pct.json"
		sep=,
		printf 's%d %s %s %s %s\n' "$i" "$file" "$owner" "$group" "$mode" >>"$dir/baseline.list"
	done
	printf ']}\n' >>"$dir/manifest.json"
	printf ']}\n' >>"$dir/manifest-1pct.json"
	(cd "$work/plain" && seq -f 's%.0f' 1 "$n" | xargs sha256sum) >"$dir/expected.sha256"
}

# write_sops N DIR: one sops YAML file with keys k1…kN, its manifest and expected checksums.
write_sops() {
	local n=$1 dir=$2 i value sep=""
	mkdir -p "$dir/sops-expected"
	{
		for ((i = 1; i <= n; i++)); do
			printf -v value "pw-%d-%08x%08x%08x%08x" "$i" $SRANDOM $SRANDOM $SRANDOM $SRANDOM
			printf 'k%d: %s\n' "$i" "$value"
			printf '%s' "$value" >"$dir/sops-expected/k$i"
		done
	} >"$dir/sops-plain.yaml"
	(cd "$dir" && SOPS_AGE_RECIPIENTS=$recipient sops encrypt --input-type yaml --output-type yaml \
		sops-plain.yaml >secrets.sops.yaml)
	rm "$dir/sops-plain.yaml"
	{
		printf '{"version":1,"secretsDir":"%s","mountPoint":"%s","identities":["%s"],"secrets":[' \
			"$dir/sops/run/secrets" "$dir/sops/run/secrets.d" "$host_key"
		for ((i = 1; i <= n; i++)); do
			printf '%s{"name":"k%d","file":"%s","format":"yaml","key":"k%d"}' \
				"$sep" "$i" "$dir/secrets.sops.yaml" "$i"
			sep=,
		done
		printf ']}\n'
	} >"$dir/sops.json"
	(cd "$dir/sops-expected" && seq -f 'k%.0f' 1 "$n" | xargs sha256sum) >"$dir/sops-expected.sha256"
	rm -r "$dir/sops-expected"
}

# --- measurements ------------------------------------------------------------------------------
declare -A wall cpu rss runs
# record CASE N "wall_ms cpu_ms rss_kb reps"
record() {
	local figures
	read -r -a figures <<<"$3"
	wall[$1,$2]=${figures[0]} cpu[$1,$2]=${figures[1]} rss[$1,$2]=${figures[2]} runs[$1,$2]=${figures[3]}
}
fresh() { echo "umount -l '$1/run/secrets.d' 2>/dev/null; rm -rf '$1/run'"; }
check_outputs() { # check_outputs SECRETS_DIR CHECKSUMS WHAT
	(cd "$1" && sha256sum --quiet --strict -c "$2") >/dev/null ||
		{ echo "run.sh: $3: output files do not hold the expected content" >&2; exit 1; }
}
# quietly runs an untimed command, showing its output only if it fails.
quietly() {
	local output
	if ! output=$("$@" 2>&1); then
		printf '%s\n' "$output" >&2
		echo "run.sh: failed: $*" >&2
		exit 1
	fi
	printf '%s' "$output"
}
# plan_json MANIFEST OUT: activates MANIFEST, untimed, writing the plan as JSON to OUT.
plan_json() {
	"$secretd" activate --manifest "$1" --no-signal --json >"$2" 2>"$2.log" ||
		{ cat "$2.log" >&2; echo "run.sh: activating $1 failed" >&2; exit 1; }
}
check_status() {
	"$secretd" status --mount-point "$1" >/dev/null || { echo "run.sh: $2: secretd status is unhealthy" >&2; exit 1; }
}

for n in $sizes; do
	dir=$work/n$n
	write_inputs "$n" "$dir"
	root=$dir/agefiles
	changed=$(((n + 99) / 100))

	log "N=$n: secretd activate on a fresh ramfs"
	record activate "$n" "$("$measure" -reps "$reps" -before "$(fresh "$root")" -- \
		"$secretd" activate --manifest "$dir/manifest.json" --no-signal)"
	check_outputs "$root/run/secrets" "$dir/expected.sha256" "activate N=$n"
	check_status "$root/run/secrets.d" "activate N=$n"

	log "N=$n: re-activation, nothing changed"
	record nochange "$n" "$("$measure" -reps "$reps" -- \
		"$secretd" activate --manifest "$dir/manifest.json" --no-signal)"
	plan_json "$dir/manifest.json" "$dir/nochange.plan.json"
	grep -q '"newGeneration": false' "$dir/nochange.plan.json" ||
		{ echo "run.sh: no-change N=$n made a new generation" >&2; exit 1; }

	log "N=$n: re-activation, $changed of $n secrets re-encrypted with new content"
	record onepct "$n" "$("$measure" -reps "$reps" \
		-before "'$secretd' activate --manifest '$dir/manifest.json' --no-signal" -- \
		"$secretd" activate --manifest "$dir/manifest-1pct.json" --no-signal)"
	quietly "$secretd" activate --manifest "$dir/manifest.json" --no-signal >/dev/null
	plan_json "$dir/manifest-1pct.json" "$dir/onepct.plan.json"
	got=$(grep -c '"action": "change"' "$dir/onepct.plan.json" || true)
	[ "$got" = "$changed" ] || { echo "run.sh: 1% N=$n changed $got secrets, want $changed" >&2; exit 1; }
	check_status "$root/run/secrets.d" "1% changed N=$n"
	umount -l "$root/run/secrets.d"

	if [ "$use_sops" = 1 ]; then
		log "N=$n: one sops file with $n keys (sops encrypt, then activate on a fresh ramfs)"
		write_sops "$n" "$dir"
		record sops "$n" "$("$measure" -reps "$reps" -before "$(fresh "$dir/sops")" -- \
			"$secretd" activate --manifest "$dir/sops.json" --no-signal)"
		check_outputs "$dir/sops/run/secrets" "$dir/sops-expected.sha256" "sops N=$n"
		check_status "$dir/sops/run/secrets.d" "sops N=$n"
		umount -l "$dir/sops/run/secrets.d"
	fi

	if ((n <= baseline_max)); then
		base_reps=$((n >= 1000 ? 1 : (reps < 3 ? reps : 3)))
		log "N=$n: agenix-style baseline ($base_reps run(s))"
		record baseline "$n" "$("$measure" -reps "$base_reps" -before "$(fresh "$dir/baseline")" -- \
			bash "$repo/bench/agenix-style.sh" "$dir/baseline/run/secrets.d" "$dir/baseline/run/secrets" \
			"$host_key" "$dir/baseline.list")"
		check_outputs "$dir/baseline/run/secrets" "$dir/expected.sha256" "baseline N=$n"
		umount -l "$dir/baseline/run/secrets.d"
	fi
	[ "$keep" = 1 ] || rm -rf "$dir"
done

# --- report ------------------------------------------------------------------------------------
ms() { # a duration in ms, with the precision it deserves
	awk -v v="$1" 'BEGIN { if (v >= 10000) printf "%.1f s", v / 1000; else if (v >= 100) printf "%.0f ms", v; else printf "%.1f ms", v }'
}
mb() { awk -v v="$1" 'BEGIN { printf "%.1f MB", v / 1024 }'; }
cell() { # cell CASE N: wall time or a dash
	if [ -n "${wall[$1,$2]:-}" ]; then ms "${wall[$1,$2]}"; else echo "—"; fi
}
ratio() {
	if [ -n "${wall[baseline,$1]:-}" ]; then
		awk -v b="${wall[baseline,$1]}" -v s="${wall[activate,$1]}" 'BEGIN { printf "%.0f×", b / s }'
	else
		echo "skipped (N > $baseline_max)"
	fi
}
label() {
	case $1 in
	activate) echo "secretd activate, fresh ramfs" ;;
	nochange) echo "secretd re-activation, no change" ;;
	onepct) echo "secretd re-activation, 1% changed" ;;
	sops) echo "secretd, 1 sops file of N keys" ;;
	baseline) echo "agenix-style baseline (bash + age)" ;;
	esac
}

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report=$(
	echo "### Activation benchmark"
	echo
	echo "Machine: ${cpu_model:-unknown CPU}, $(nproc) cores, Linux $(uname -r), $(go version | awk '{print $3}')."
	# shellcheck disable=SC2016 # backquotes are Markdown here
	printf 'secretd binary: %s bytes (%s), static, built with `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w"`.\n' \
		"$binary_size" "$(mb $((binary_size / 1024)))"
	echo "Secrets: agenix-style files (\`age -R\` to an ssh-ed25519 host key, ~40 bytes each); the sops case"
	echo "reads N keys of one sops YAML file encrypted to the host key's ssh-to-age recipient."
	echo "Wall time, median of $reps runs (baseline: median of up to 3 runs below N = 1000, 1 run from there)."
	echo "Load average (1, 5, 15 min) before the run: $load_before; after: $load_after. Other work on the"
	echo "machine inflates wall times; CPU time (second table) is much less sensitive to it."
	echo
	printf '| N | activate (fresh ramfs) | re-activate, no change | re-activate, 1%% changed | 1 sops file, N keys | agenix-style baseline | baseline / secretd |\n'
	printf '|---:|---:|---:|---:|---:|---:|---:|\n'
	for n in $sizes; do
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$(cell activate "$n")" "$(cell nochange "$n")" \
			"$(cell onepct "$n")" "$(cell sops "$n")" "$(cell baseline "$n")" "$(ratio "$n")"
	done
	echo
	echo "CPU time (user+sys, children included) and peak RSS (largest single process):"
	echo
	printf '| N | case | wall | CPU | peak RSS | runs |\n'
	printf '|---:|---|---:|---:|---:|---:|\n'
	for n in $sizes; do
		for c in activate nochange onepct sops baseline; do
			[ -n "${wall[$c,$n]:-}" ] || continue
			printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$(label "$c")" "$(ms "${wall[$c,$n]}")" \
				"$(ms "${cpu[$c,$n]}")" "$(mb "${rss[$c,$n]}")" "${runs[$c,$n]}"
		done
	done
	notes=()
	((max_n > baseline_max)) && notes+=("The baseline was skipped for N > $baseline_max (--baseline-max).")
	[ "$use_sops" = 1 ] || notes+=("The sops case was skipped: sops was not on PATH or --no-sops was given.")
	if [ ${#notes[@]} -gt 0 ]; then
		echo
		printf '%s\n' "${notes[@]}"
	fi
	prev=""
	scaling=()
	for n in $sizes; do
		if [ -n "$prev" ]; then
			for c in activate nochange sops; do
				[ -n "${wall[$c,$n]:-}" ] && [ -n "${wall[$c,$prev]:-}" ] || continue
				scaling+=("$(awk -v a="${wall[$c,$prev]}" -v b="${wall[$c,$n]}" -v ca="${cpu[$c,$prev]}" \
					-v cb="${cpu[$c,$n]}" -v c="$c" -v p="$prev" -v n="$n" \
					'BEGIN { printf "%s %s→%s: ×%.1f wall, ×%.1f CPU for ×%.0f secrets", c, p, n, b / a, cb / ca, n / p }')")
			done
		fi
		prev=$n
	done
	if [ ${#scaling[@]} -gt 0 ]; then
		echo
		echo "Scaling: $(IFS=';'; echo "${scaling[*]}" | sed 's/;/; /g')."
	fi
)
echo "$report"
[ -z "$out" ] || echo "$report" >"$out"
log "done"
