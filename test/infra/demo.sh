#!/usr/bin/env bash
# demo.sh: a live demonstration against the local servers (run `make demo`,
# which first runs up.sh and builds bin/cdcd). It creates the Kinesis stream
# cdcd-demo and the table public.orders, writes its own configuration for
# the local servers to .cache/demo.toml, runs `cdcd check --online`, starts
# `cdcd run` and `cdcd tail`, inserts a row a second for DEMO_SECONDS
# (default 10) and stops both on Ctrl-C or at the end. The servers keep
# running: `make infra-down`.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STREAM=cdcd-demo
SHARDS=2
SECONDS_TO_RUN=${DEMO_SECONDS:-10}
BIN=$ROOT/bin/cdcd
CONFIG=$CACHE/demo.toml
STATE_DIR=$CACHE/demo-state

[[ -f $ENVFILE ]] || die "$ENVFILE not found: start the servers with \`make infra-up\` (\`make demo\` does)"
# shellcheck disable=SC1090
. "$ENVFILE"
[[ -x $BIN ]] || die "$BIN not found: run \`make build\`"
mkdir -p "$LOGDIR"
PG_PASSWORD=${CDCD_TEST_PG_DSN#postgres://cdcd:}
PG_PASSWORD=${PG_PASSWORD%%@*}
DSN_NOPW=${CDCD_TEST_PG_DSN/cdcd:$PG_PASSWORD@/cdcd@}
# The config names the variable that holds the password (password_env).
export CDCD_PG_PASSWORD=$PG_PASSWORD
PSQL=("$CDCD_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$CDCD_TEST_PG_DSN")

kinesis() { node "$INFRA/util.js" post "$CDCD_TEST_KINESIS_ENDPOINT" "Kinesis_20131202.$1" "$2"; }

# ------------------------------------------------------------------ stream
if out=$(kinesis CreateStream "{\"StreamName\":\"$STREAM\",\"ShardCount\":$SHARDS}" 2>&1); then
	log "created Kinesis stream $STREAM ($SHARDS shards)"
elif [[ $out == *ResourceInUseException* ]]; then
	log "Kinesis stream $STREAM exists"
else
	die "CreateStream $STREAM: $out"
fi
deadline=$((SECONDS + 30))
until kinesis DescribeStreamSummary "{\"StreamName\":\"$STREAM\"}" 2>/dev/null | grep -q '"StreamStatus":"ACTIVE"'; do
	((SECONDS < deadline)) || die "stream $STREAM did not become ACTIVE within 30s"
	sleep 0.2
done

# ------------------------------------------------------------------- table
"${PSQL[@]}" <<'EOF'
CREATE TABLE IF NOT EXISTS public.orders (
	id         bigserial PRIMARY KEY,
	item       text,
	qty        int,
	price      numeric(10,2),
	created_at timestamptz DEFAULT now()
);
EOF
log "table public.orders ready"

# ------------------------------------------------------------------ config
# The demo's own configuration, for the stand-ins up.sh started: their
# endpoints and ports, kinesalite's account, the test cluster's password in
# the environment. A production file starts from config.example.toml.
cat >"$CONFIG" <<EOF
# Written by test/infra/demo.sh for the local stand-ins of \`make demo\`;
# config.example.toml is the example for production.
state_dir = "$STATE_DIR"
listen = "127.0.0.1:9180"

[log]
level = "info"
format = "text"

[aws]
region = "$AWS_REGION"
# kinesalite's account; left out, cdcd would ask STS, which has no stand-in here.
account = "000000000000"
kinesis_endpoint = "$CDCD_TEST_KINESIS_ENDPOINT"

[[cluster]]
name = "local"
dsn = "$DSN_NOPW"
password_env = "CDCD_PG_PASSWORD"

[[stream]]
name = "orders"
cluster = "local"
tables = ["public.orders"]
set_replica_identity_full = true

[stream.target]
kinesis_stream = "$STREAM"
EOF
log "config written to $CONFIG"

# up.sh makes a fresh cluster each start; the daemon's state from a demo on
# an earlier cluster would name a slot that no longer exists (SOURCE_SLOT_LOST).
SYSID=$("${PSQL[@]}" -At -c "SELECT system_identifier FROM pg_control_system()")
if [[ -d $STATE_DIR && $(read_file "$CACHE/demo.sysid") != "$SYSID" ]]; then
	log "new test cluster: removing the previous demo's state in $STATE_DIR"
	rm -rf "$STATE_DIR"
fi
echo "$SYSID" >"$CACHE/demo.sysid"

# What starting the stream will find: the source and the Kinesis stream.
"$BIN" check --online --config "$CONFIG" || die "cdcd check --online failed"

# ------------------------------------------------------------------ daemon
DAEMON_PID=
TAIL_PID=
stop_demo() {
	trap - INT TERM EXIT
	local pid
	for pid in $TAIL_PID $DAEMON_PID; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $TAIL_PID $DAEMON_PID; do
		wait "$pid" 2>/dev/null || true
	done
}
trap stop_demo EXIT
trap 'echo; log "interrupted"; exit 130' INT TERM

DAEMON_LOG=$LOGDIR/demo-daemon.log
"$BIN" run --config "$CONFIG" >"$DAEMON_LOG" 2>&1 &
DAEMON_PID=$!
log "started cdcd run (pid $DAEMON_PID, log $DAEMON_LOG)"
sleep 1
if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
	tail -n 20 "$DAEMON_LOG" >&2 || true
	die "cdcd run exited at once; see $DAEMON_LOG"
fi

"$BIN" tail --config "$CONFIG" --stream orders --from-start --format text &
TAIL_PID=$!
log "started cdcd tail (pid $TAIL_PID); its records appear below"

# ------------------------------------------------------------------ writes
items=(apple banana cherry durian elderberry fig grape)
for ((i = 1; i <= SECONDS_TO_RUN; i++)); do
	item=${items[RANDOM % ${#items[@]}]}
	qty=$((RANDOM % 9 + 1))
	price=$((RANDOM % 5000 + 100))
	row=$("${PSQL[@]}" -At -c "INSERT INTO public.orders (item, qty, price)
		VALUES ('$item', $qty, $price / 100.0) RETURNING id, item, qty, price")
	IFS='|' read -r id item qty price <<<"$row"
	log "inserted order $id: $qty x $item at $price"
	kill -0 "$DAEMON_PID" 2>/dev/null || die "cdcd run stopped; see $DAEMON_LOG"
	sleep 1
done
sleep 2 # let the last records reach the tail

cat <<EOF

Demo finished: $SECONDS_TO_RUN orders went from PostgreSQL (public.orders) through
cdcd into the Kinesis stream $STREAM and back out through \`cdcd tail\`.
  daemon log:   $DAEMON_LOG
  config:       $CONFIG
  database:     $CDCD_TEST_PG_DSN
  more rows:    $CDCD_TEST_PG_BIN/psql '$CDCD_TEST_PG_DSN'
  stop servers: make infra-down
EOF
