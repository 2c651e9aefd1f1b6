#!/usr/bin/env bash
# with-servers.sh CMD...: run CMD with PostgreSQL, kinesalite and local-kms
# up (up.sh) and their addresses in its environment (.cache/env), as
# `make test` does, and keep CMD's exit status. The servers are stopped at
# the end if this call started them, unless KEEP_INFRA is set; servers that
# `make infra-up` started are left to their developer. Runs in one checkout
# take turns (a lock on .cache/run/users): tests use cluster-wide names
# (slots, streams), and the soak restarts PostgreSQL. `make soak` uses it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || die "usage: with-servers.sh CMD [ARG...]"
mkdir -p "$RUN"
exec 8>>"$RUN/users"
if ! flock -n -x 8; then
	log "waiting for another run in this checkout"
	flock -x 8
fi
OWNED=$RUN/make-owned
if [[ ! -f $ENVFILE ]]; then touch "$OWNED"; fi
if [[ -n ${KEEP_INFRA:-} ]]; then rm -f "$OWNED"; fi
stop_owned() {
	if [[ -f $OWNED ]]; then
		rm -f "$OWNED"
		bash "$INFRA/down.sh"
	else
		log "servers left running; make infra-down stops them"
	fi
}
trap stop_owned EXIT
bash "$INFRA/up.sh" 8>&-
set -a
# shellcheck source=/dev/null
. "$ENVFILE"
set +a
# Without the lock's descriptor: a server the command restarts (the soak
# restarts PostgreSQL) would hold the lock for as long as it runs.
"$@" 8>&-
