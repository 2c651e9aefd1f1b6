#!/usr/bin/env bash
# values_gen.sh regenerates values_input.tsv, the real PostgreSQL text and
# binary inputs of TestGoldenValues, from a running server:
#
#   CDCD_TEST_PG_DSN=postgres://… record/testdata/values_gen.sh
#
# (test/infra/up.sh starts one and writes the DSN to .cache/env.) Then run
# `go test ./record -run Golden -update` to refresh the golden outputs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CDCD_TEST_PG_DSN:?set CDCD_TEST_PG_DSN (see test/infra/up.sh)}"
psql=${PSQL:-psql}
command -v "$psql" >/dev/null || psql=$(ls /usr/lib/postgresql/*/bin/psql | tail -1)
"$psql" -X -q -d "$CDCD_TEST_PG_DSN" -f "$here/values_gen.sql" | grep -v '^$' >"$here/values_input.tsv.tmp"
mv "$here/values_input.tsv.tmp" "$here/values_input.tsv"
echo "wrote $here/values_input.tsv ($(wc -l <"$here/values_input.tsv") cases)"
