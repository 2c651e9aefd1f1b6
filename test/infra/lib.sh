# lib.sh: shared definitions for up.sh, down.sh and demo.sh. Sourced, not run.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INFRA=$ROOT/test/infra
CACHE=$ROOT/.cache
RUN=$CACHE/run
LOGDIR=$CACHE/log
ENVFILE=$CACHE/env

PG_MAJOR=15
PG_BIN=${CDCD_INFRA_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
KINESALITE_VERSION=3.3.3
# local-kms has no tags and the proxy refuses its version list: pin the
# pseudo-version: `go install ...@latest` cannot resolve it.
LOCAL_KMS_MODULE=github.com/nsmithuk/local-kms
LOCAL_KMS_VERSION=v0.0.0-20231025161602-e4d9425700fe

SCRIPT_NAME=$(basename "$0")
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# as_pg runs a PostgreSQL server program: initdb and postgres refuse root,
# so as root they run as the postgres user.
as_pg() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# priv runs a command with root rights: directly as root, else through sudo.
priv() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (not root and no sudo)"
	fi
}

# pid_is PID PATTERN succeeds when PID is alive and its command line contains
# PATTERN, so a recycled PID never gets a stranger killed.
pid_is() {
	local pid=$1 pattern=$2
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# read_file FILE prints FILE's first line, or nothing if it does not exist.
read_file() { [[ -f $1 ]] && head -n1 "$1" || true; }

# stop_pid NAME PATTERN stops the process recorded in $RUN/NAME.pid:
# SIGTERM, up to 10 s of grace, then SIGKILL.
stop_pid() {
	local name=$1 pattern=$2 pid i
	pid=$(read_file "$RUN/$name.pid")
	if pid_is "$pid" "$pattern"; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_is "$pid" "$pattern" || break
			sleep 0.1
		done
		if pid_is "$pid" "$pattern"; then
			log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$RUN/$name.pid"
}

# pg_paths sets PG_ROOT, PG_DATA and PG_SOCK from a previous run's records.
pg_paths() {
	PG_ROOT=$(read_file "$RUN/pg.root")
	PG_ROOT=${PG_ROOT:-$CACHE/pg}
	PG_DATA=$PG_ROOT/data
	PG_SOCK=$(read_file "$RUN/pg.sock")
	PG_SOCK=${PG_SOCK:-$PG_ROOT/sock}
}

# stop_pg stops the test cluster if its postmaster is running.
stop_pg() {
	pg_paths
	if [[ -f $PG_DATA/postmaster.pid ]]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			log "pg_ctl stop failed (cluster probably not running)"
	fi
	rm -f "$RUN/pg.pid" "$RUN/pg.ready"
}

# lock serialises up.sh and down.sh so parallel callers do not race.
lock() {
	mkdir -p "$RUN"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$RUN/lock"
		flock -w 600 9 || die "could not lock $RUN/lock within 600 s"
	fi
}
