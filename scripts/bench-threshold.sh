#!/usr/bin/env bash
# A slow or frozen member never stalls the baker: the attestation latency through a threshold
# coordinator (2 of 3 members, each its own process) with a healthy group, with member 3 slowed
# beyond the coordinator's timeout (every request to it held 3 s, timeout 2 s) and with member 3
# frozen (it never answers), measured by the project's load tool (one consensus stream:
# preattestation then attestation at rising levels, the baker's pattern). Member 3 sits behind
# tools/slowproxy in every run, healthy included, so the runs differ only in its delay.
# Prints one line per run and the p99 ratio to the healthy run; the reports are JSON in $OUT.
# Usage: ./scripts/bench-threshold.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
OUT=${OUT:-$(mktemp -d)}
PORT=${PORT:-6900}
mkdir -p "$OUT"
BIN=$(mktemp -d)
go build -o "$BIN/signatory" ./cmd/signatory
go build -o "$BIN/signatory-bench" ./cmd/signatory-bench
go build -o "$BIN/slowproxy" ./tools/slowproxy
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
ready() { # utility port
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "the signer on utility port $1 did not start: see $OUT" >&2; exit 1
}

"$BIN/signatory" threshold split -t 2 -n 3 --generate --secret-keys-dir "$OUT" > "$OUT/split.txt"
GROUP=$(sed -n 2p "$OUT/split.txt" | tr -d ' ')
GROUP_PK=$(sed -n 3p "$OUT/split.txt" | tr -d ' ')
mapfile -t SHARES < <(awk '/share key:/ {print $3}' "$OUT/split.txt")
for i in 1 2 3; do
  cat > "$OUT/member-$i/signatory.yaml" <<YAML
base_dir: $OUT/member-$i/data
server: {address: 127.0.0.1:$((PORT + i)), utility_address: 127.0.0.1:$((PORT + 10 + i))}
vaults: {share: {driver: file, config: {file: $OUT/member-$i/secret_keys}}}
watermark: {driver: file}
tezos:
  ${SHARES[$((i - 1))]}:
    allow: {block: , preattestation: , attestation: }
YAML
  "$BIN/signatory" serve -c "$OUT/member-$i/signatory.yaml" > "$OUT/member-$i.log" 2>&1 &
  pids+=($!)
  ready $((PORT + 10 + i))
done
cat > "$OUT/coordinator.yaml" <<YAML
base_dir: $OUT/coordinator-data
server: {address: 127.0.0.1:$PORT, utility_address: 127.0.0.1:$((PORT + 10))}
vaults:
  baker:
    driver: threshold
    config:
      public_key: $GROUP_PK
      threshold: 2
      timeout: 2s
      members:
        - {index: 1, url: http://127.0.0.1:$((PORT + 1)), key: ${SHARES[0]}}
        - {index: 2, url: http://127.0.0.1:$((PORT + 2)), key: ${SHARES[1]}}
        - {index: 3, url: http://127.0.0.1:$((PORT + 30)), key: ${SHARES[2]}}
watermark: {driver: file}
tezos:
  $GROUP:
    allow: {block: , preattestation: , attestation: }
YAML

proxy() { # slowproxy flags: (re)start member 3's proxy
  [ -n "${PROXY:-}" ] && { kill "$PROXY"; wait "$PROXY" 2>/dev/null || true; }
  "$BIN/slowproxy" --listen 127.0.0.1:$((PORT + 30)) --target http://127.0.0.1:$((PORT + 3)) "$@" >> "$OUT/proxy.log" 2>&1 &
  PROXY=$!; pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$((PORT + 30))/healthz" --max-time 0.2 && break; [ "$1" = --freeze ] && break; sleep 0.05; done
}
proxy
"$BIN/signatory" serve -c "$OUT/coordinator.yaml" > "$OUT/coordinator.log" 2>&1 &
pids+=($!)
ready $((PORT + 10))

run() { # name, slowproxy flags…
  local name=$1; shift
  proxy "$@"
  "$BIN/signatory-bench" --json --url "http://127.0.0.1:$PORT" --keys "$GROUP" -w consensus -c 1 -d "${SECS}s" --warmup 2s > "$OUT/$name.json"
}
run healthy
run slow --delay 3s
run frozen --freeze
run healthy-again
node - "$OUT" <<'JS'
const fs = require("fs"), out = process.argv[2];
const read = (n) => JSON.parse(fs.readFileSync(`${out}/${n}.json`));
const base = read("healthy").latency_ms.P99;
console.log("| member 3 | requests | errors | p50 ms | p99 ms | p99 / healthy |");
console.log("|---|---|---|---|---|---|");
for (const n of ["healthy", "slow", "frozen", "healthy-again"]) {
  const r = read(n), l = r.latency_ms;
  console.log(`| ${n} | ${r.requests} | ${r.errors} | ${l.P50.toFixed(2)} | ${l.P99.toFixed(2)} | ${(l.P99 / base).toFixed(2)} |`);
}
JS
echo "reports in $OUT" >&2
