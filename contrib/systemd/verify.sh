#!/usr/bin/env bash
# verify.sh: systemd-analyze verify on cdcd.service, failing on any message
# it prints (an unknown key is only a warning to it, with exit status 0).
# verify also insists that ExecStart's program exists, so it checks a copy
# whose ExecStart runs /bin/true with the same arguments. Without
# systemd-analyze (apt-get install systemd) the check is skipped with a
# message; .ci/run installs it.
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit=$dir/cdcd.service
exec_start='ExecStart=/usr/local/bin/cdcd '

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze verify: skipped, systemd-analyze is not installed (apt-get install systemd)"
	exit 0
fi
grep -q "^$exec_start" "$unit" || {
	echo "verify.sh: $unit has no line starting with $exec_start" >&2
	exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^$exec_start|ExecStart=/bin/true |" "$unit" >"$tmp/cdcd.service"
echo "systemd-analyze verify contrib/systemd/cdcd.service"
status=0
out=$(systemd-analyze verify "$tmp/cdcd.service" 2>&1) || status=$?
if ((status != 0)) || [[ -n $out ]]; then
	printf '%s\n' "$out" | sed "s|$tmp/cdcd.service|$unit|g" >&2
	echo "verify.sh: systemd-analyze verify failed (status $status)" >&2
	exit 1
fi
