#!/bin/bash
# amlsim setup runner. cloud-init runs it at every boot (per-boot script):
# the creation script at the first boot only, then the startup script, as
# Azure ML runs a compute instance's setup scripts. Each run's output goes
# to the workspace file share under Logs/<instance>/, and its outcome to a
# status file for this boot that the simulator reads over SSH.
set -u
# (The two directories can be moved for a test on the host.)
conf=${AMLSIM_CONF_DIR:-/etc/amlsim}
state=${AMLSIM_STATE_DIR:-/var/lib/amlsim}
mkdir -p "$state"
boot=$(cat /proc/sys/kernel/random/boot_id)
status="$state/setup-$boot.status"
: >"$status"

# CI_RESOURCE_GROUP, CI_WORKSPACE, CI_NAME, CI_LOCAL_UBUNTU_USER, LOG_DIR,
# FAULT_FILE
. "$conf/env"
export CI_RESOURCE_GROUP CI_WORKSPACE CI_NAME CI_LOCAL_UBUNTU_USER

logdir=$LOG_DIR
if ! mkdir -p "$logdir" 2>/dev/null; then
	logdir=/var/log/amlsim
	mkdir -p "$logdir"
fi

# run KIND [CONF] runs the script of that kind, if the instance has one;
# CONF holds its settings (default: $conf/KIND.conf).
run() {
	local kind=$1 settings=${2:-$conf/$1.conf} SCRIPT WORKDIR TIMEOUT ARGS
	[ -f "$settings" ] || return 0
	. "$settings"
	local log
	log="$logdir/${kind}_$(date -u +%Y%m%dT%H%M%SZ).txt"
	echo "start $kind $log" >>"$status"
	mkdir -p "$WORKDIR"
	local t0 rc=0
	t0=$(date +%s%N)
	(cd "$WORKDIR" && exec timeout --kill-after=10s "${TIMEOUT:-0}" bash "$SCRIPT" "${ARGS[@]}") </dev/null >"$log" 2>&1 || rc=$?
	echo "exit $kind $rc $((($(date +%s%N) - t0) / 1000000)) $log" >>"$status"
	return $rc
}

ok=1
if [ ! -e "$state/creation.done" ]; then
	run creation || ok=0
	touch "$state/creation.done"
fi
# A fault rule of the simulator (amlsim serve --faults) may have left, in
# the share, a file saying "CODE RULE": this boot's startup script is then
# one that says so and exits CODE. The file is taken (deleted); only a
# number and a rule's name are read from it.
startup=$conf/startup.conf
if [ -n "${FAULT_FILE:-}" ] && [ -f "$FAULT_FILE" ]; then
	read -r code rule _ <"$FAULT_FILE" || true
	rm -f "$FAULT_FILE"
	rule=${rule//[!A-Za-z0-9._-]/}
	case "$code" in
	'' | *[!0-9]*) ;;
	*)
		if [ "$code" -ge 1 ] && [ "$code" -le 255 ]; then
			printf '#!/bin/bash\necho "amlsim: fault rule %s: this startup script exits %s in place of the instance'"'"'s" >&2\nexit %s\n' \
				"$rule" "$code" "$code" >"$state/fault-startup.sh"
			printf 'SCRIPT=%s\nWORKDIR=%s\nTIMEOUT=0\nARGS=()\n' "$state/fault-startup.sh" "$state" >"$state/fault-startup.conf"
			startup=$state/fault-startup.conf
		fi
		;;
	esac
fi
if [ $ok = 1 ]; then
	run startup "$startup"
fi
echo done >>"$status"
