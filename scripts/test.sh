#!/usr/bin/env bash
# Runs the whole test suite: gofmt, go vet, and go test -race over every module in
# the repository, then every benchmark once. PostgreSQL tests use
# TEST_DATABASE_URL; when it is unset and a PostgreSQL server is installed, a
# throwaway server is started for the run (scripts/pg.sh).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOWORK=off
export GOFLAGS=${GOFLAGS:-}

pgdir=""
cleanup() { [ -n "$pgdir" ] && bash "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1; [ -n "$pgdir" ] && rm -rf "$pgdir"; }
trap cleanup EXIT
if [ -z "${TEST_DATABASE_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  pgdir=$(mktemp -d /tmp/durable-pg.XXXXXX)
  if out=$(bash "$root/scripts/pg.sh" start "$pgdir"); then
    eval "$out"
    echo "PostgreSQL started for the tests: $TEST_DATABASE_URL"
  else
    echo "could not start PostgreSQL; its tests will be skipped (or fail under CI=true)"
    echo "$out"
  fi
fi

log=$(mktemp)
status=0
modules=$(find . -name go.mod -not -path './.git/*' | sort)

unformatted=$(gofmt -l $(find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted:"; echo "$unformatted"; status=1
fi

for mod in $modules; do
  dir=$(dirname "$mod")
  echo "=== module $dir"
  if ! (cd "$dir" && go vet ./...); then status=1; fi
  if ! (cd "$dir" && go test -race -count=1 -v ./... 2>&1 | tee -a "$log" | grep -E '^(ok|FAIL|panic|\s*--- FAIL)' ); then :; fi
  if grep -qE '^(FAIL|panic:)' "$log"; then status=1; fi
  if ! (cd "$dir" && go test -run '^$' -bench . -benchtime=1x ./... >/dev/null 2>"$log.bench"); then
    echo "benchmarks failed in $dir:"; cat "$log.bench"; status=1
  fi
done

# The peers benchmark (bench/peers) once at a small N, so that it never rots:
# with PEERS_SMOKE=1 (.ci/run sets it), while the PostgreSQL server is up.
if [ -n "${PEERS_SMOKE:-}" ]; then
  echo "=== peers benchmark (bench/peers), 100 steps, one round"
  (cd bench/peers && go test -run '^TestPeers$' -count=1 -v -timeout 10m . \
    -peers.n=100 -peers.rounds=1 -peers.gwlock=2s) >"$log.peers" 2>&1
  grep -E '^(\||ok|FAIL|panic|\s*--- )' "$log.peers"
  if grep -qE '^(FAIL|panic:|\s*--- (FAIL|SKIP))' "$log.peers"; then
    cat "$log.peers"; status=1
  fi
  rm -f "$log.peers"
fi

passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
rm -f "$log" "$log.bench"
[ "$failed" -gt 0 ] && status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
