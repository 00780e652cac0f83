#!/bin/bash
# Scenario runner of the test VM. It checks secretd's effects on the running system and
# reports each scenario's checks and verdict on the results port (the line protocol is
# described in vmtest/internal/results). Secret values are only ever compared through their
# SHA-256; nothing here prints one.
set -u
export LC_ALL=C SYSTEMD_PAGER= SYSTEMD_COLORS=0 PATH=/usr/sbin:/usr/bin:/sbin:/bin

DATA=/var/lib/vmtest
# shellcheck source=/dev/null
. $DATA/config # TIER SECRETD MANIFEST USER_MANIFEST HOME_USER KERNEL_RELEASE WATCHDOG, and RESULTS JOURNAL_OUT outside a VM
# In the VM the results and journal go to serial ports the host captures; in a container
# to files the host reads afterwards.
RESULTS=${RESULTS:-/dev/ttyS1}
JOURNAL_OUT=${JOURNAL_OUT:-/dev/ttyS2}
BOOT=$(cat $DATA/boot-count)
APP_CONFIG=/var/lib/app/config
WAIT=30 # seconds to wait for an asynchronous effect; TCG guests are slow
# No wait goes past the budget, so that even when every wait times out the runner reports
# and powers off before the host's watchdog (WATCHDOG seconds from power-on) kills the boot.
uptime=$(cut -d. -f1 /proc/uptime)
[ "$TIER" = vm ] || uptime=0
BUDGET=$((SECONDS + WATCHDOG - uptime - 60))

if [ -c "$RESULTS" ]; then
	stty -F "$RESULTS" raw -echo 2>/dev/null
	stty -F "$JOURNAL_OUT" raw -echo 2>/dev/null
fi
exec 3>>"$RESULTS"

current=-
scenario_failed=0

say() { printf 'VMTEST %s\n' "$*" >&3; }
log() { say "LOG $current $*"; }
info() { say "INFO $current $*"; }

# check DESCRIPTION COMMAND...: runs one check and logs its outcome. The command's own
# output (from the helpers below, never a secret) explains a failure.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		log "ok: $desc"
	else
		scenario_failed=1
		log "FAILED: $desc${out:+: $(printf %s "$out" | head -c 600 | tr '\n' ' ')}"
	fi
}

run_scenario() {
	current=$1
	scenario_failed=0
	say "BEGIN $1"
	local started=$SECONDS
	"scenario_${1//-/_}"
	info "took $((SECONDS - started))s"
	if [ $scenario_failed = 0 ]; then say "PASS $1"; else say "FAIL $1"; fi
	current=-
}

# --- helpers: each prints why it failed, and nothing else -------------------------------

eq() { [ "$1" = "$2" ] || { echo "got '$1', want '$2'"; return 1; }; }
ne() { [ "$1" != "$2" ] || { echo "both are '$1'"; return 1; }; }
not() { if "$@" >/dev/null 2>&1; then echo "succeeded: $*"; return 1; fi; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
prop() { systemctl show -P "$2" "$1"; }

# wait_until COMMAND...: retries until the command succeeds or WAIT seconds pass. A command
# exiting 2 has failed for good (say, the unit it waits on has failed) and is not retried.
wait_until() {
	local deadline=$((SECONDS + WAIT)) rc
	[ $deadline -le $BUDGET ] || deadline=$BUDGET
	while true; do
		"$@" >/dev/null 2>&1
		rc=$?
		[ $rc = 0 ] && return 0
		if [ $rc = 2 ] || [ $SECONDS -ge $deadline ]; then
			"$@"
			[ $rc = 2 ] || echo "(still failing after waiting)"
			return 1
		fi
		sleep 0.3
	done
}

hash_is() { # FILE SHA256
	[ -f "$1" ] || { echo "$1: missing"; return 1; }
	[ "$(sha "$1")" = "$2" ] || { echo "$1: content differs from the expected value ($(stat -L -c %s "$1") bytes)"; return 1; }
}

expected_hash() { # SET NAME
	awk -v n="$2" '$1 == n { print $5 }' "$DATA/expect/$1"
}

# done_at UNIT: when UNIT finished starting: a oneshot without RemainAfterExit (secretd's
# units, inactive once done so that every switch reruns them) never becomes active.
done_at() {
	local t
	t=$(prop "$1" ExecMainExitTimestampMonotonic)
	[ "$(prop "$1" Type)" = oneshot ] && [ "${t:-0}" -gt 0 ] || t=$(prop "$1" ActiveEnterTimestampMonotonic)
	echo "${t:-0}"
}

unit_succeeded() {
	case "$(prop "$1" ActiveState)/$(prop "$1" Result)" in
	active/success) return 0 ;;
	inactive/success) [ "$(done_at "$1")" -gt 0 ] && return 0 ;;
	esac
	echo "$1: $(prop "$1" ActiveState)/$(prop "$1" Result)"
	return 1
}

# unit_active UNIT: exits 2 (no use waiting) once the unit has failed.
unit_active() {
	local state
	state=$(prop "$1" ActiveState)
	case $state in
	active) return 0 ;;
	inactive) [ "$(prop "$1" Result)" = success ] && [ "$(prop "$1" Type)" = oneshot ] && [ "$(done_at "$1")" -gt 0 ] && return 0 ;;
	failed) echo "$1 failed"; return 2 ;;
	esac
	echo "$1 is $state"
	return 1
}

# finished_before A B: unit A became active before unit B did.
finished_before() {
	local a b
	a=$(done_at "$1")
	b=$(done_at "$2")
	[ "${a:-0}" -gt 0 ] || { echo "$1 never became active"; return 1; }
	[ "${b:-0}" -gt 0 ] || { echo "$2 never became active"; return 1; }
	[ "$a" -le "$b" ] || { echo "$1 active at ${a}us, after $2 at ${b}us"; return 1; }
}

# started_after A B: unit A's main process started after unit B became active.
started_after() {
	local a b
	a=$(prop "$1" ExecMainStartTimestampMonotonic)
	b=$(done_at "$2")
	[ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] && [ "$a" -ge "$b" ] ||
		{ echo "$1 started at ${a:-?}us, $2 active at ${b:-?}us"; return 1; }
}

fstype_is() { eq "$(stat -f -c %T "$1" 2>&1)" "$2"; }

link_into() { # LINK DIR: LINK is a symlink resolving to a directory directly under DIR
	[ -L "$1" ] || { echo "$1 is not a symlink"; return 1; }
	local target
	target=$(readlink -f "$1")
	[ -d "$target" ] && [ "$(dirname "$target")" = "$2" ] || { echo "$1 -> $target"; return 1; }
}

generation_count() { find "$1" -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9]+' | wc -l; }

# check_set SET [DIR]: every output file of an expectation set has its owner, group, mode
# and content. Lines of a set: NAME OWNER GROUP MODE SHA256.
check_set() {
	local set=$1 dir=${2:-/run/secrets} name owner group mode hash f
	while read -r name owner group mode hash; do
		f=$dir/$name
		check "$name: owner and group $owner:$group" eq "$(stat -L -c %U:%G "$f" 2>&1)" "$owner:$group"
		check "$name: mode $mode" eq "$(stat -L -c %a "$f" 2>&1)" "$(printf %o $((8#$mode)))"
		check "$name: content of $set" hash_is "$f" "$hash"
	done <"$DATA/expect/$set"
}

seen_is() { # UNIT SET SECRET: the consumer recorded the hash of what it read at start
	local dir
	dir=/run/${1%.service}
	unit_active "$1" >/dev/null
	[ $? = 2 ] && { echo "$1 failed"; return 2; }
	[ -f "$dir/seen" ] || { echo "$dir/seen missing"; return 1; }
	[ "$(cat "$dir/seen")" = "$(expected_hash "$2" "$3")" ] || { echo "$1 read other content than $3 of $2"; return 1; }
}

reloads() { cat /run/vmtest/app-reload.reloads 2>/dev/null | wc -l; }

dynamic_uid() { # UNIT runs under an allocated dynamic UID (61184-65519)
	local pid uid
	pid=$(prop "$1" MainPID)
	uid=$(stat -c %u "/proc/$pid" 2>/dev/null)
	[ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || { echo "main PID $pid runs as uid '${uid}'"; return 1; }
}

# activate VERSION: installs a manifest version the way a switch does, then restarts the
# unit. reset-failed clears systemd's start rate limit, which quick test switches could hit.
activate() {
	cp "$DATA/manifests/$1.json" "$MANIFEST" &&
		systemctl reset-failed secretd.service &&
		systemctl restart secretd.service
}

ids() { # prints "unit=InvocationID" for each consumer
	local u
	for u in app-restart app-reload app-static app-owner; do
		printf '%s=%s ' $u "$(prop $u.service InvocationID)"
	done
}

id_of() { prop "$1" InvocationID; }
restarted() { ne "$(id_of "$1")" "$2"; } # UNIT OLD-INVOCATION-ID
reload_count_is() { eq "$(reloads)" "$1"; }

status_exit() { # WANT: secretd status exits with WANT (0) or non-zero ("fail")
	local rc=0
	"$SECRETD" status >/run/vmtest/status.out 2>&1 || rc=$?
	if [ "$1" = 0 ]; then
		[ $rc = 0 ] || { echo "exit $rc:"; head -c 400 /run/vmtest/status.out; return 1; }
	else
		[ $rc != 0 ] || { echo "exit 0:"; head -c 400 /run/vmtest/status.out; return 1; }
	fi
}

status_names() { grep -q -F "$1" /run/vmtest/status.out || { echo "output does not name $1:"; head -c 400 /run/vmtest/status.out; return 1; }; }

# as_user USER COMMAND...: runs a command as USER with its runtime directory, as its own
# session would.
as_user() {
	local uid
	uid=$(id -u "$1") || return 1
	shift
	setpriv --reuid="$uid" --regid="$uid" --init-groups \
		env XDG_RUNTIME_DIR="/run/user/$uid" HOME="$(getent passwd "$uid" | cut -d: -f6)" "$@"
}

user_prop() { as_user "$HOME_USER" systemctl --user show -P "$2" "$1"; } # UNIT PROPERTY
user_manager_running() { eq "$(prop "user@$(id -u "$HOME_USER").service" ActiveState)" active; }
user_unit_succeeded() { eq "$(user_prop "$1" ActiveState)/$(user_prop "$1" Result)" "active/success"; }
user_restarted() { ne "$(user_prop "$1" InvocationID)" "$2"; } # UNIT OLD-INVOCATION-ID

user_seen_is() { # SET: the user unit gh-sync recorded the hash of github/oauth_token of SET
	local seen
	seen=/run/user/$(id -u "$HOME_USER")/gh-sync.seen
	[ -f "$seen" ] || { echo "$seen missing"; return 1; }
	[ "$(cat "$seen")" = "$(expected_hash "$1" github/oauth_token)" ] || { echo "gh-sync read other content than github/oauth_token of $1"; return 1; }
}

# home_switch VERSION: what home-manager switch does: a new user manifest, and the user unit
# restarted by its activation step.
home_switch() {
	cp "$DATA/manifests/$1.json" "$USER_MANIFEST" &&
		as_user "$HOME_USER" systemctl --user restart secretd.service
}

# --- scenarios ---------------------------------------------------------------------------

scenario_harness() {
	check "PID 1 is systemd" eq "$(readlink /proc/1/exe)" /usr/lib/systemd/systemd
	if [ "$TIER" = vm ]; then
		check "kernel is $KERNEL_RELEASE" eq "$(uname -r)" "$KERNEL_RELEASE"
		check "root is the virtio disk" eq "$(findmnt -n -o SOURCE /)" /dev/vda
		info "runner started at uptime ${RUNNER_UPTIME}s"
	else
		check "this is a systemd-nspawn container" eq "$(systemd-detect-virt --container)" systemd-nspawn
	fi
	check "the runner is the main process of its unit" eq "$(prop vmtest-runner.service MainPID)" "$$"
	check "boot finished" wait_until is_up
	info "$(systemd-analyze time 2>&1 | head -1)"
	systemd-analyze blame --no-pager 2>&1 | head -12 | while read -r line; do info "blame: $line"; done
}

is_up() { case $(systemctl is-system-running 2>&1) in running | degraded) return 0 ;; esac; return 1; }

scenario_boot() {
	check "secretd.service succeeded" unit_succeeded secretd.service
	check "secretd.service was active before sysinit.target" finished_before secretd.service sysinit.target
	check "the probe ordered before secretd saw no generation and no /run/secrets" \
		grep -qx 'generations=0 secrets=absent' /run/vmtest/probe
	check "/run/secrets.d is a ramfs" fstype_is /run/secrets.d ramfs
	check "/proc/mounts lists the ramfs" grep -q ' /run/secrets.d ramfs ' /proc/mounts
	check "/run/secrets points to a generation in /run/secrets.d" link_into /run/secrets /run/secrets.d
	check "the generation is on the ramfs" fstype_is "$(readlink -f /run/secrets)" ramfs
	check_set v1
	check "svcuser cannot read root's db-password" not runuser -u svcuser -- cat /run/secrets/db-password
	check "svcuser (group svcgrp) reads api-token" runuser -u svcuser -- sh -c 'cat /run/secrets/api-token >/dev/null'
	check "nobody cannot read svcuser's static-key" not runuser -u nobody -- cat /run/secrets/static-key
	local u
	for u in app-restart app-reload app-static app-owner; do
		check "$u.service is active" wait_until unit_active $u.service
		check "$u.service started after secretd.service" started_after $u.service secretd.service
	done
	check "app-restart.service runs under a dynamic user" dynamic_uid app-restart.service
	check "app-restart.service read db-password through LoadCredential" wait_until seen_is app-restart.service v1 db-password
	check "app-reload.service read api-token through LoadCredential" wait_until seen_is app-reload.service v1 api-token
	check "app-static.service (svcuser) read static-key" wait_until seen_is app-static.service v1 static-key
	check "app-owner.service (svcuser) read owned-cert" wait_until seen_is app-owner.service v1 owned-cert
}

scenario_for_users() {
	check "secretd-for-users.service succeeded" unit_succeeded secretd-for-users.service
	check "secretd-for-users.service was active before systemd-sysusers started" \
		started_after systemd-sysusers.service secretd-for-users.service
	check "secretd-for-users.service was active before sysinit.target" finished_before secretd-for-users.service sysinit.target
	check_set for-users /run/secrets-for-users
	check "alice was created at boot" getent passwd alice
	check "alice's shadow hash is the for-users secret" shadow_is alice "$(expected_hash for-users alice-password)"
}

shadow_is() {
	local hash
	hash=$(getent shadow "$1" | cut -d: -f2 | tr -d '\n' | sha256sum | cut -d' ' -f1)
	[ "$hash" = "$2" ] || { echo "$1's shadow password field differs from the secret"; return 1; }
}

scenario_status() {
	local f
	check "secretd status exits 0 on the activated system" status_exit 0
	f=$(readlink -f /run/secrets/db-password)
	chmod 0644 "$f"
	check "secretd status fails after chmod 0644 of db-password" status_exit fail
	check "secretd status names db-password" status_names db-password
	chmod 0400 "$f"
	check "secretd status is healthy again once the mode is restored" status_exit 0
}

scenario_security() {
	local unit line
	for unit in secretd.service secretd-for-users.service; do
		line=$(systemd-analyze security --no-pager "$unit" 2>&1 | grep 'Overall exposure level' | tail -1)
		check "systemd-analyze security rates $unit" test -n "$line"
		[ -n "$line" ] && info "$unit: ${line#*: }"
	done
}

scenario_home() {
	local rt before
	rt=/run/user/$(id -u "$HOME_USER")
	check "$HOME_USER lingers: its systemd --user runs without a login" wait_until user_manager_running
	check "the user unit secretd.service succeeded" wait_until user_unit_succeeded secretd.service
	check "$rt/secrets points into $rt/secretd.d" link_into "$rt/secrets" "$rt/secretd.d"
	check "the user's store is $HOME_USER's, mode 0700" eq "$(stat -c '%U %a' "$rt/secretd.d" 2>&1)" "$HOME_USER 700"
	check "the user's store is on the runtime tmpfs" fstype_is "$rt/secretd.d" tmpfs
	check_set home-v1 "$rt/secrets"
	check "~/.npmrc is a symlink into the user's secrets" eq "$(readlink "/home/$HOME_USER/.npmrc")" "$rt/secrets/npmrc"
	check "~/.config/git/secrets.inc is a symlink to the rendered gitconfig" \
		eq "$(readlink "/home/$HOME_USER/.config/git/secrets.inc")" "$rt/secrets/rendered/gitconfig"
	check "the gitconfig include holds the token in its URL rewrite" \
		hash_is "/home/$HOME_USER/.config/git/secrets.inc" "$(expected_hash home-v1 rendered/gitconfig)"
	check "another user (svcuser) cannot read the user's secrets" \
		not setpriv --reuid=svcuser --regid=svcgrp --clear-groups cat "$rt/secrets/npmrc"
	check "the user unit gh-sync.service read the token" wait_until user_seen_is home-v1
	before=$(user_prop gh-sync.service InvocationID)
	check "a home-manager switch rotating github/oauth_token succeeds" home_switch home-v2
	check_set home-v2 "$rt/secrets"
	check "gh-sync.service (restartUnits) was restarted on the user's manager" wait_until user_restarted gh-sync.service "$before"
	check "gh-sync.service sees the rotated token" wait_until user_seen_is home-v2
	check "secretd status --user exits 0" as_user "$HOME_USER" "$SECRETD" status --user
}

scenario_rotation() {
	local before reloads_before gen_before
	before=$(ids)
	reloads_before=$(reloads)
	gen_before=$(readlink -f /run/secrets)
	check "activating v2 (db-password and api-token rotated) succeeds" activate v2
	check "/run/secrets points to a new generation" ne "$(readlink -f /run/secrets)" "$gen_before"
	check_set v2
	check "app-restart.service (restartUnits of db-password) restarted" wait_until restarted app-restart.service "$(field "$before" app-restart)"
	check "app-restart.service is active again" wait_until unit_active app-restart.service
	check "the restarted app-restart.service sees the new db-password" wait_until seen_is app-restart.service v2 db-password
	check "app-reload.service (reloadUnits of api-token) was reloaded once" wait_until reload_count_is $((reloads_before + 1))
	check "app-reload.service kept its InvocationID" eq "$(id_of app-reload.service)" "$(field "$before" app-reload)"
	check "app-static.service (static-key unchanged) kept its InvocationID" eq "$(id_of app-static.service)" "$(field "$before" app-static)"
	check "app-owner.service (owned-cert unchanged) kept its InvocationID" eq "$(id_of app-owner.service)" "$(field "$before" app-owner)"
}

field() { # "IDS" UNIT: one unit's InvocationID from the output of ids
	local kv
	for kv in $1; do [ "${kv%%=*}" = "$2" ] && echo "${kv#*=}"; done
}

scenario_owner_mode() {
	local before reloads_before
	before=$(ids)
	reloads_before=$(reloads)
	check "activating v3 (owned-cert mode 0440 -> 0400, same content) succeeds" activate v3
	check_set v3
	check "app-owner.service (restartUnits of owned-cert) restarted" wait_until restarted app-owner.service "$(field "$before" app-owner)"
	check "app-owner.service is active again" wait_until unit_active app-owner.service
	check "app-restart.service kept its InvocationID" eq "$(id_of app-restart.service)" "$(field "$before" app-restart)"
	check "app-static.service kept its InvocationID" eq "$(id_of app-static.service)" "$(field "$before" app-static)"
	check "app-reload.service was not reloaded" eq "$(reloads)" "$reloads_before"
}

scenario_failure() {
	local before gen_before cursor u
	before=$(ids)
	gen_before=$(readlink -f /run/secrets)
	cursor=$(journalctl --show-cursor -n 0 -q | sed -n 's/^-- cursor: //p')
	check "activating v4 (undecryptable-token encrypted to another key) fails" not activate v4
	check "secretd.service is failed" eq "$(prop secretd.service ActiveState)" failed
	check "the journal names the undecryptable secret" wait_until journal_names "$cursor" undecryptable-token
	check "/run/secrets still points to the previous generation" eq "$(readlink -f /run/secrets)" "$gen_before"
	check "undecryptable-token was not written" not test -e /run/secrets/undecryptable-token
	check_set v3
	for u in app-restart app-reload app-static app-owner; do
		check "$u.service kept running (same InvocationID)" eq "$(id_of $u.service)/$(prop $u.service ActiveState)" "$(field "$before" $u)/active"
	done
	check "activating v3 again recovers secretd.service" activate v3
	check "secretd.service succeeded" unit_succeeded secretd.service
}

scenario_early_boot() {
	check "vmtest-early.service (DefaultDependencies=no) succeeded" unit_succeeded vmtest-early.service
	check "vmtest-early.service has no default dependencies" eq "$(prop vmtest-early.service DefaultDependencies)" no
	check "secretd.service is ordered before vmtest-early.service (the unit itself names no order)" \
		has_word "$(prop vmtest-early.service After)" secretd.service
	check "vmtest-early.service started after secretd.service had finished" started_after vmtest-early.service secretd.service
	check "vmtest-early.service was active before sysinit.target" finished_before vmtest-early.service sysinit.target
	check "vmtest-early.service read wg-key at start" seen_is vmtest-early.service v1 wg-key
}

has_word() { # "WORDS" WORD
	case " $1 " in *" $2 "*) return 0 ;; esac
	echo "'$2' not in '$1'"
	return 1
}

scenario_agenix_password() {
	check "the emulated activation script succeeded" unit_succeeded vmtest-activation.service
	check "it finished before secretd.service started" \
		started_after secretd.service vmtest-activation.service
	check "/run/agenix.d is a ramfs" fstype_is /run/agenix.d ramfs
	check "the users step found /run/agenix in a generation on /run/agenix.d" \
		eq "$(dirname "$(cat /run/vmtest/agenix-at-users 2>&1)")" /run/agenix.d
	check_set agenix-for-users /run/agenix
	check "bob was created at first boot" getent passwd bob
	check "bob's shadow hash is the age secret bob-password" shadow_is bob "$(expected_hash agenix-for-users bob-password)"
	# Then secretd.service of that configuration activates every secret into /run/agenix.
	local users_gen
	users_gen=$(readlink -f /run/agenix)
	check "activating all agenix secrets, as its secretd.service does, succeeds" "$SECRETD" activate --manifest "$DATA/manifests/agenix.json"
	check "/run/agenix points to a new generation" ne "$(readlink -f /run/agenix)" "$users_gen"
	check "/run/agenix is a symlink into /run/agenix.d" link_into /run/agenix /run/agenix.d
	check_set agenix /run/agenix
	check "bob's shadow hash is unchanged" shadow_is bob "$(expected_hash agenix bob-password)"
}

scenario_symlink_migration() {
	local inode
	check "agenix left a regular file at $APP_CONFIG" eq "$(stat -c '%F %U %a' "$APP_CONFIG" 2>&1)" "regular file root 400"
	# Without JOURNAL_STREAM (inherited from the runner unit) secretd logs to stderr.
	env -u JOURNAL_STREAM "$SECRETD" activate --manifest "$DATA/manifests/agenix-copy-1.json" >/run/vmtest/copy.out 2>&1
	check "activating app-config with symlink = false over it succeeds" eq "$?" 0
	check "every secret was activated" check_quietly agenix-copy-1 /run/agenix
	check "$APP_CONFIG is a regular file, not a symlink" eq "$(stat -c %F "$APP_CONFIG" 2>&1)" "regular file"
	check "$APP_CONFIG is svcuser:svcgrp, mode 440" eq "$(stat -c '%U:%G %a' "$APP_CONFIG" 2>&1)" "svcuser:svcgrp 440"
	check "$APP_CONFIG holds the secret" hash_is "$APP_CONFIG" "$(expected_hash agenix-copy-1 app-config)"
	check "svcuser reads it" runuser -u svcuser -- sh -c "cat $APP_CONFIG >/dev/null"
	check "secretd warns that the copy is on disk, not on a tmpfs or ramfs" grep -q -i "neither tmpfs nor ramfs" /run/vmtest/copy.out
	inode=$(stat -c %i "$APP_CONFIG")
	check "activating a rotated app-config succeeds" "$SECRETD" activate --manifest "$DATA/manifests/agenix-copy-2.json"
	check "$APP_CONFIG was replaced (a new inode), not rewritten in place" ne "$(stat -c %i "$APP_CONFIG")" "$inode"
	check "$APP_CONFIG keeps svcuser:svcgrp, mode 440" eq "$(stat -c '%U:%G %a %F' "$APP_CONFIG" 2>&1)" "svcuser:svcgrp 440 regular file"
	check "$APP_CONFIG holds the rotated secret" hash_is "$APP_CONFIG" "$(expected_hash agenix-copy-2 app-config)"
	check_set agenix-copy-2 /run/agenix
}

# check_quietly SET DIR: every file of SET is in DIR with its content (check_set, as one check).
check_quietly() {
	local name owner group mode hash
	while read -r name owner group mode hash; do
		hash_is "$2/$name" "$hash" || return 1
	done <"$DATA/expect/$1"
}

# switch_same_manifest: what switch-to-configuration does when the manifest did not change:
# the unit file is the same, so it is neither restarted nor reloaded; systemd is reloaded and
# sysinit-reactivation.target restarted, which starts the units it requires that are inactive.
switch_same_manifest() {
	cmp -s "$DATA/manifests/v3.json" "$MANIFEST" || { echo "the live manifest is not v3"; return 1; }
	cp "$DATA/manifests/v3.json" "$MANIFEST" &&
		systemctl daemon-reload &&
		systemctl restart sysinit-reactivation.target
}

scenario_switch_rerun() {
	local before gen_before early_before u
	before=$(ids)
	gen_before=$(readlink -f /run/secrets)
	early_before=$(id_of vmtest-early.service)
	local secretd_before
	secretd_before=$(id_of secretd.service)
	check "secretd.service is inactive once done (no RemainAfterExit)" eq "$(prop secretd.service ActiveState)" inactive
	# The encrypted file outside the store changes; the manifest naming it does not.
	cp "$DATA/secrets/wg-key-2.age" "$DATA/external/wg-key.age"
	check "a switch with the same manifest (daemon-reload, restart sysinit-reactivation.target) succeeds" switch_same_manifest
	check "secretd.service ran again" restarted secretd.service "$secretd_before"
	check "secretd.service succeeded" unit_succeeded secretd.service
	check "/run/secrets points to a new generation" ne "$(readlink -f /run/secrets)" "$gen_before"
	check_set switched
	check "vmtest-early.service (restartUnits of wg-key) restarted" wait_until restarted vmtest-early.service "$early_before"
	check "the restarted vmtest-early.service read the new wg-key" wait_until seen_is vmtest-early.service switched wg-key
	for u in app-restart app-reload app-static app-owner; do
		check "$u.service (its secret unchanged) kept its InvocationID" eq "$(id_of $u.service)" "$(field "$before" $u)"
	done
}

journal_names() { # CURSOR WORD
	journalctl -q --no-pager -o cat -u secretd.service ${1:+--after-cursor="$1"} | grep -q -F "$2" ||
		{ echo "no secretd.service journal line since the restart mentions $2"; return 1; }
}

scenario_reboot() {
	[ "$TIER" = vm ] && info "runner started at uptime ${RUNNER_UPTIME}s"
	check "this is the second boot of the same disk" eq "$BOOT" 2
	check "the probe ordered before secretd saw no generation and no /run/secrets" \
		grep -qx 'generations=0 secrets=absent' /run/vmtest/probe
	check "secretd.service succeeded" unit_succeeded secretd.service
	check "/run/secrets.d is a ramfs" fstype_is /run/secrets.d ramfs
	check "exactly one generation exists" eq "$(generation_count /run/secrets.d)" 1
	check "/run/secrets points to it" link_into /run/secrets /run/secrets.d
	check_set switched
	check "app-restart.service sees the rotated db-password" wait_until seen_is app-restart.service v3 db-password
	check "vmtest-early.service read the switched wg-key at boot" seen_is vmtest-early.service switched wg-key
	check "the agenix password step ran again: bob's hash is the secret" shadow_is bob "$(expected_hash agenix bob-password)"
	check "secretd status exits 0" status_exit 0
}

dump_journal() {
	{
		echo "VMTEST-JOURNAL BEGIN $BOOT"
		journalctl -b --no-pager -o short-monotonic
		echo "VMTEST-JOURNAL END"
	} >>"$JOURNAL_OUT" 2>&1
}

# --- main -------------------------------------------------------------------------------

RUNNER_UPTIME=$(cut -d' ' -f1 /proc/uptime)
say "BOOT $BOOT"
for name in $(awk -v b="$BOOT" '$1 == b { print $2 }' $DATA/plan); do
	run_scenario "$name"
done
if awk -v b="$BOOT" '$1 > b { found = 1 } END { exit !found }' $DATA/plan; then
	# The next boot's scenarios check what survives a reboot; the manifest on disk is the
	# last one activated successfully, as after a switch. The host boots the same disk
	# again once this one is off.
	cp $DATA/manifests/v3.json "$MANIFEST"
	sync
else
	say "END"
fi
dump_journal
say "INFO - powering off at uptime $(cut -d' ' -f1 /proc/uptime)s"
say "HALT $BOOT"
systemctl poweroff
