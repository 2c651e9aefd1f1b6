#!/usr/bin/env bash
# up.sh: start the servers the end-to-end tests need, all under .cache/:
#
#   PostgreSQL 15 (apt)        a throwaway logical-replication cluster
#   kinesalite 3.3.3 (npm)     Kinesis on 127.0.0.1
#   local-kms (Go, pinned)     KMS
#
# and write .cache/env (export lines: CDCD_TEST_*, AWS_*). Idempotent: servers
# from a previous run that still answer are reused, so a second call takes
# well under a second. Ports are free ones chosen by the kernel unless set by
# CDCD_INFRA_PG_PORT, CDCD_INFRA_KINESIS_PORT or CDCD_INFRA_KMS_PORT.
# CDCD_INFRA_TIMEOUT (seconds, default 60) bounds each wait. Logs go to
# .cache/log/. Stop everything with test/infra/down.sh.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT=${CDCD_INFRA_TIMEOUT:-60}
START=$SECONDS
# The cdcd role's password. Distinctive, so that the end-to-end suites can
# scan the logs for it (testenv.RunCheckingLogs).
PG_PASSWORD=test-pw-k7Qx92

command -v node >/dev/null 2>&1 || die "node is required (kinesalite and the health checks run on it); install nodejs"
command -v npm >/dev/null 2>&1 || die "npm is required to install kinesalite; install npm"
command -v go >/dev/null 2>&1 || die "go is required to build local-kms"

lock
mkdir -p "$RUN" "$LOGDIR" "$CACHE/bin"
# The postgres user must be able to traverse .cache to reach its data dir.
if is_root; then chmod 755 "$CACHE"; fi

# wait_for NAME LOGFILE PID PATTERN CMD... retries CMD until it succeeds, the
# process dies or TIMEOUT passes, and names the service and its log on failure.
wait_for() {
	local name=$1 logf=$2 pid=$3 pattern=$4 deadline=$((SECONDS + TIMEOUT))
	shift 4
	until "$@" >/dev/null 2>&1; do
		if [[ -n $pid ]] && ! pid_is "$pid" "$pattern"; then
			tail -n 20 "$logf" >&2 || true
			die "$name exited during startup; see $logf"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$logf" >&2 || true
			die "$name did not answer within ${TIMEOUT}s; see $logf"
		fi
		sleep 0.1
	done
}

# start_bg NAME LOGFILE CMD... starts CMD detached (its own session, so a
# Ctrl-C in the caller's terminal does not reach it) and records its PID. The
# lock descriptors (9: up.sh/down.sh, 8: `make test`'s users lock) are
# closed for it, or the server would hold the locks for ever.
# In a script without job control the background child is not a process
# group leader, so setsid execs in place and $! is the server's PID.
start_bg() {
	local name=$1 logf=$2
	shift 2
	: >"$logf"
	setsid "$@" >>"$logf" 2>&1 </dev/null 8>&- 9>&- &
	echo $! >"$RUN/$name.pid"
}

# aws_json_ok PORT TARGET succeeds when an AWS JSON 1.1 call TARGET with an
# empty body gets HTTP 200 from 127.0.0.1:PORT. Plain bash (/dev/tcp), so the
# already-running case costs no node start-up.
aws_json_ok() {
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 2
		printf "POST / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: %s\r\nX-Amz-Date: 20200101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}" "$1" "$2" >&3
		read -r proto status _ <&3
		cat <&3 >/dev/null
		[[ $status == 200 ]]' aws_json_ok "$1" "$2"
}
kinesis_ok() { aws_json_ok "$1" Kinesis_20131202.ListStreams; }
kms_ok() { aws_json_ok "$1" TrentService.ListKeys; }

# ensure_ports fills FREE with three free ports, asked of the kernel once and
# all together so they are distinct; only when a server must start.
FREE=()
ensure_ports() {
	if ((${#FREE[@]} == 0)); then
		mapfile -t FREE < <(node "$INFRA/util.js" freeports 3)
		((${#FREE[@]} == 3)) || die "could not find free TCP ports"
	fi
}

# ---------------------------------------------------------------- PostgreSQL

if [[ ! -x $PG_BIN/initdb ]]; then
	log "installing PostgreSQL $PG_MAJOR from apt (log: $LOGDIR/apt.log)"
	{
		priv apt-get update &&
			priv env DEBIAN_FRONTEND=noninteractive apt-get install -y \
				"postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR"
	} >"$LOGDIR/apt.log" 2>&1 || {
		tail -n 20 "$LOGDIR/apt.log" >&2
		die "apt-get install postgresql-$PG_MAJOR failed; see $LOGDIR/apt.log"
	}
	[[ -x $PG_BIN/initdb ]] || die "$PG_BIN/initdb still missing after apt-get install"
fi

pg_healthy() {
	local port pid
	pg_paths
	port=$(read_file "$RUN/pg.port")
	[[ -n $port && -f $RUN/pg.ready && -f $PG_DATA/postmaster.pid ]] || return 1
	[[ -z ${CDCD_INFRA_PG_PORT:-} || $CDCD_INFRA_PG_PORT == "$port" ]] || return 1
	pid=$(head -n1 "$PG_DATA/postmaster.pid")
	pid_is "$pid" postgres || return 1
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d cdcd -U cdcd -t 2
}

start_pg() {
	local port logf=$LOGDIR/postgres.log
	ensure_ports
	port=${CDCD_INFRA_PG_PORT:-${FREE[0]}}
	stop_pg

	# Everything the server touches must be reachable by the postgres user;
	# if the repository sits under a directory it cannot enter (say /root),
	# fall back to a private directory in /tmp.
	PG_ROOT=$CACHE/pg
	if is_root; then
		getent passwd postgres >/dev/null || die "user postgres does not exist (is postgresql-$PG_MAJOR installed?)"
		mkdir -p "$PG_ROOT"
		chown postgres: "$PG_ROOT"
		if ! runuser -u postgres -- test -w "$PG_ROOT"; then
			PG_ROOT=/tmp/cdcd-pg-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)
			log "user postgres cannot reach $CACHE; using $PG_ROOT"
		fi
	fi
	PG_DATA=$PG_ROOT/data
	PG_SOCK=$PG_ROOT/sock
	# A Unix socket path must fit in 107 bytes.
	if ((${#PG_SOCK} > 80)); then
		PG_SOCK=/tmp/cdcd-pg-sock-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)
	fi
	echo "$PG_ROOT" >"$RUN/pg.root"
	echo "$PG_SOCK" >"$RUN/pg.sock"
	# pg_ctl opens the log as the server's user: outside its reach, the log
	# lives with the data and .cache/log links to it.
	rm -f "$logf"
	if [[ $PG_ROOT != "$CACHE/pg" ]]; then
		ln -s "$PG_ROOT/postgres.log" "$logf"
		logf=$PG_ROOT/postgres.log
	fi

	# A fresh cluster every start: no slot or database survives from an
	# earlier run to retain WAL or confuse a test.
	rm -rf "$PG_DATA"
	mkdir -p "$PG_DATA" "$PG_SOCK"
	chmod 700 "$PG_DATA"
	: >"$logf"
	if is_root; then
		chown -R postgres: "$PG_ROOT" "$PG_SOCK" "$logf"
	fi

	log "initdb $PG_DATA"
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale \
		--no-sync --no-instructions >"$LOGDIR/initdb.log" 2>&1 ||
		die "initdb failed; see $LOGDIR/initdb.log"

	as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<-EOF

		# cdcd test cluster, written by test/infra/up.sh
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$PG_SOCK'
		wal_level = logical
		# Parallel tests (make test's -parallel) each hold a slot or two,
		# a walsender per slot and a handful of connections.
		max_replication_slots = 40
		max_wal_senders = 40
		max_connections = 200
		timezone = 'UTC'
		log_timezone = 'UTC'
		# Test speed only: a crash may lose this throwaway cluster.
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF
	# Trust on the socket (for setup); passwords over TCP, so tests exercise
	# real password authentication with the DSN's cdcd:$PG_PASSWORD.
	as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<-EOF
		local all         all                trust
		local replication all                trust
		host  all         all   127.0.0.1/32 scram-sha-256
		host  replication all   127.0.0.1/32 scram-sha-256
	EOF

	log "starting PostgreSQL on 127.0.0.1:$port"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$logf" -w -t "$TIMEOUT" start >/dev/null 2>&1 8>&- 9>&- || {
		tail -n 20 "$logf" >&2 || true
		die "PostgreSQL failed to start (or took over ${TIMEOUT}s); see $logf"
	}
	wait_for PostgreSQL "$logf" "" "" "$PG_BIN/pg_isready" -q -h "$PG_SOCK" -p "$port" -t 2
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$port" -U postgres -d postgres \
		>"$LOGDIR/pg-setup.log" 2>&1 <<-EOF || die "creating role and database cdcd failed; see $LOGDIR/pg-setup.log"
			CREATE ROLE cdcd WITH LOGIN SUPERUSER REPLICATION PASSWORD '$PG_PASSWORD';
			CREATE DATABASE cdcd OWNER cdcd;
		EOF
	wait_for PostgreSQL "$logf" "" "" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d cdcd -U cdcd -t 2
	head -n1 "$PG_DATA/postmaster.pid" >"$RUN/pg.pid"
	echo "$port" >"$RUN/pg.port"
	touch "$RUN/pg.ready"
}

if pg_healthy; then
	log "PostgreSQL already running on 127.0.0.1:$(read_file "$RUN/pg.port")"
	# It may have been started by an up.sh with another password.
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$(read_file "$RUN/pg.port")" -U postgres -d postgres \
		-c "ALTER ROLE cdcd PASSWORD '$PG_PASSWORD'" >"$LOGDIR/pg-setup.log" 2>&1 ||
		die "setting the password of role cdcd failed; see $LOGDIR/pg-setup.log"
else
	start_pg
fi

# ----------------------------------------------------------------- kinesalite

KINESALITE_DIR=$CACHE/npm
kinesalite_installed() {
	grep -q "\"version\": *\"$KINESALITE_VERSION\"" "$KINESALITE_DIR/node_modules/kinesalite/package.json" 2>/dev/null
}
if ! kinesalite_installed; then
	log "installing kinesalite@$KINESALITE_VERSION with npm (log: $LOGDIR/npm.log)"
	mkdir -p "$KINESALITE_DIR"
	[[ -f $KINESALITE_DIR/package.json ]] || echo '{"name":"cdcd-test-infra","private":true}' >"$KINESALITE_DIR/package.json"
	npm install --prefix "$KINESALITE_DIR" --no-audit --no-fund --save-exact \
		"kinesalite@$KINESALITE_VERSION" >"$LOGDIR/npm.log" 2>&1 || {
		tail -n 20 "$LOGDIR/npm.log" >&2
		die "npm install kinesalite@$KINESALITE_VERSION failed; see $LOGDIR/npm.log"
	}
	kinesalite_installed || die "kinesalite@$KINESALITE_VERSION missing after npm install; see $LOGDIR/npm.log"
fi

kinesis_healthy() {
	local port
	port=$(read_file "$RUN/kinesalite.port")
	[[ -n $port ]] || return 1
	[[ -z ${CDCD_INFRA_KINESIS_PORT:-} || $CDCD_INFRA_KINESIS_PORT == "$port" ]] || return 1
	pid_is "$(read_file "$RUN/kinesalite.pid")" kinesalite || return 1
	kinesis_ok "$port" >/dev/null 2>&1
}

if kinesis_healthy; then
	log "kinesalite already running on 127.0.0.1:$(read_file "$RUN/kinesalite.port")"
else
	stop_pid kinesalite kinesalite
	ensure_ports
	port=${CDCD_INFRA_KINESIS_PORT:-${FREE[1]}}
	log "starting kinesalite on 127.0.0.1:$port"
	# Kinesalite's CLI binds every interface; its API binds where we say.
	# Kinesalite rethrows a client's aborted request (a cancelled context,
	# a fault test) as an uncaught exception and dies: log and carry on.
	start_bg kinesalite "$LOGDIR/kinesalite.log" node -e "
		process.on('uncaughtException', function(e){ console.error('kinesalite: ignored:', e && e.stack || e) });
		require('$KINESALITE_DIR/node_modules/kinesalite')({createStreamMs:50,deleteStreamMs:50,updateStreamMs:50,shardLimit:100})
			.listen($port,'127.0.0.1',function(err){ if (err) throw err; console.log('kinesalite listening on 127.0.0.1:$port') })"
	wait_for kinesalite "$LOGDIR/kinesalite.log" "$(read_file "$RUN/kinesalite.pid")" kinesalite kinesis_ok "$port"
	echo "$port" >"$RUN/kinesalite.port"
fi

# ------------------------------------------------------------------ local-kms

KMS_BIN=$CACHE/bin/local-kms
if [[ ! -x $KMS_BIN || $(read_file "$KMS_BIN.version") != "$LOCAL_KMS_VERSION" ]]; then
	log "building local-kms $LOCAL_KMS_VERSION (log: $LOGDIR/local-kms-build.log)"
	mkdir -p "$CACHE/tools"
	(
		cd "$CACHE/tools"
		export GOWORK=off
		[[ -f go.mod ]] || go mod init tools
		go get -tool "$LOCAL_KMS_MODULE@$LOCAL_KMS_VERSION"
		go build -o "$KMS_BIN.tmp" "$LOCAL_KMS_MODULE"
		mv "$KMS_BIN.tmp" "$KMS_BIN"
	) >"$LOGDIR/local-kms-build.log" 2>&1 || {
		tail -n 20 "$LOGDIR/local-kms-build.log" >&2
		die "building local-kms failed; see $LOGDIR/local-kms-build.log"
	}
	echo "$LOCAL_KMS_VERSION" >"$KMS_BIN.version"
fi

kms_healthy() {
	local port
	port=$(read_file "$RUN/local-kms.port")
	[[ -n $port ]] || return 1
	[[ -z ${CDCD_INFRA_KMS_PORT:-} || $CDCD_INFRA_KMS_PORT == "$port" ]] || return 1
	pid_is "$(read_file "$RUN/local-kms.pid")" local-kms || return 1
	kms_ok "$port" >/dev/null 2>&1
}

if kms_healthy; then
	log "local-kms already running on 127.0.0.1:$(read_file "$RUN/local-kms.port")"
else
	stop_pid local-kms local-kms
	ensure_ports
	port=${CDCD_INFRA_KMS_PORT:-${FREE[2]}}
	log "starting local-kms on port $port"
	# Fresh state every start: keys from an earlier run would leak into tests.
	rm -rf "$CACHE/kms"
	mkdir -p "$CACHE/kms/data"
	start_bg local-kms "$LOGDIR/local-kms.log" env PORT="$port" KMS_REGION=us-east-1 \
		KMS_ACCOUNT_ID=000000000000 KMS_DATA_PATH="$CACHE/kms/data" "$KMS_BIN"
	wait_for local-kms "$LOGDIR/local-kms.log" "$(read_file "$RUN/local-kms.pid")" local-kms kms_ok "$port"
	echo "$port" >"$RUN/local-kms.port"
fi

# ------------------------------------------------------------------- env file

pg_paths
PG_PORT=$(read_file "$RUN/pg.port")
KINESIS_PORT=$(read_file "$RUN/kinesalite.port")
KMS_PORT=$(read_file "$RUN/local-kms.port")
cat >"$ENVFILE.tmp" <<EOF
# Written by test/infra/up.sh; source it to run the end-to-end tests by hand.
export CDCD_TEST_PG_DSN='postgres://cdcd:$PG_PASSWORD@127.0.0.1:$PG_PORT/cdcd?sslmode=disable'
export CDCD_TEST_PG_PORT='$PG_PORT'
export CDCD_TEST_PG_BIN='$PG_BIN'
export CDCD_TEST_PG_DATA='$PG_DATA'
export CDCD_TEST_PG_SOCKET='$PG_SOCK'
export CDCD_TEST_KINESIS_ENDPOINT='http://127.0.0.1:$KINESIS_PORT'
export CDCD_TEST_KMS_ENDPOINT='http://127.0.0.1:$KMS_PORT'
export AWS_REGION='us-east-1'
export AWS_DEFAULT_REGION='us-east-1'
export AWS_ACCESS_KEY_ID='cdcdtestaccesskey'
export AWS_SECRET_ACCESS_KEY='cdcdtestsecretkey'
export AWS_EC2_METADATA_DISABLED='true'
EOF
mv "$ENVFILE.tmp" "$ENVFILE"

log "ready in $((SECONDS - START))s: PostgreSQL 127.0.0.1:$PG_PORT, kinesalite 127.0.0.1:$KINESIS_PORT, local-kms 127.0.0.1:$KMS_PORT"
log "environment in $ENVFILE (. $ENVFILE); stop with test/infra/down.sh"
