#!/usr/bin/env bash
# down.sh: stop what test/infra/up.sh started and remove .cache/env, so tests
# run afterwards skip (or, under CI, fail) instead of dialling dead ports.
# Safe to call any number of times. Installed software, the cluster's data
# directory and the logs stay for inspection; up.sh starts from scratch.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d $CACHE ]] || exit 0
lock

stop_pg
stop_pid kinesalite kinesalite
stop_pid local-kms local-kms
rm -f "$ENVFILE" "$RUN/pg.port" "$RUN/kinesalite.port" "$RUN/local-kms.port" "$RUN/make-owned"
log "stopped PostgreSQL, kinesalite and local-kms"
