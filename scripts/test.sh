#!/usr/bin/env bash
# The whole test suite: formatting, vet, unit and process tests with the race detector, the
# Taquito interoperability suite, and a short run of every fuzz target.
# Usage: ./scripts/test.sh            (FUZZTIME=200000x by default; FUZZTIME=0 skips fuzzing)
# Fuzzing budgets are execution counts ("200000x"), not durations: with a duration, Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" on a loaded machine (Go issue
# 75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1
FUZZTIME=${FUZZTIME:-200000x}

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/interop/node_modules/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck (pinned; a finding that is right to keep carries a //lint:ignore with its reason)"
go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
"$(go env GOPATH)/bin/staticcheck" ./...

for dir in test/interop test/differential; do
  if command -v npm >/dev/null 2>&1; then
    echo "== npm ci ($dir)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  else
    echo "npm not found: the Taquito suite in $dir will be skipped" >&2
  fi
done

if [ "${VULNCHECK:-1}" != "0" ]; then
  echo "== govulncheck (database from the golang.org/x/vulndb module: vuln.go.dev may be unreachable)"
  go install golang.org/x/vuln/cmd/govulncheck@v1.9.0
  vulndb_src=$(go mod download -json golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  vulndb=$(mktemp -d)
  go run ./tools/vulndb "$vulndb_src" "$vulndb"
  "$(go env GOPATH)/bin/govulncheck" -db "file://$vulndb" ./...
  rm -rf "$vulndb"
fi

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== every benchmark once (so they cannot rot; timings are not judged)"
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./...

if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz ($FUZZTIME each)"
  for target in ./internal/request:FuzzDecode ./internal/tezos:FuzzBase58 ./internal/config:FuzzConfig \
      ./internal/jwtauth:FuzzValidate ./internal/signer:FuzzAuthentication ./internal/request:FuzzMichelineDepth \
      ./internal/server:FuzzHTTP ./internal/tezos:FuzzSecp256k1Verify ./internal/request:FuzzFastGeneric \
      ./internal/policy:FuzzParseTez ./internal/tezos:FuzzParseMatchesGotez ./internal/dkg:FuzzPackets \
      ./internal/blsthreshold:FuzzMarksVerify ./internal/socket:FuzzDecodeRequest ./internal/server:FuzzDecodeMessage ./internal/request:FuzzFastConsensus; do
    pkg=${target%%:*}; name=${target##*:}
    go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 100x
  done
fi
echo "== all tests passed"
