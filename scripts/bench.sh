#!/usr/bin/env bash
# Reproduce docs/benchmarks.md in one run: the machine's floor (go test -bench, and a trivial HTTP
# server run as its own process under the same load tool), then the daemon under the project's
# load tool per curve, concurrency and watermark backend, a baker's attestations under a flood of
# generic requests, 10,000 keys (start-up, memory, a burst), the bursts of 256 keys, and memory
# over 1 M requests. With --reference BIN (any remote signer with the reference implementation's
# CLI: `serve -c config`), the same loads run against it and us side by side, both with their
# default configs and log level, alternating, in ROUNDS rounds, and the ratios are printed (each
# load's median over the rounds, and each round's). Every report is JSON in $OUT; markdown tables
# go to stdout and the chart to $OUT/benchmarks.png.
# Usage: ./scripts/bench.sh [--reference BIN] [seconds per run, default 10]
# MEMORY_REQUESTS (default 1000000; 0 skips the memory run) sets the length of the memory run.
# ROUNDS (default 3) sets the rounds side by side with the reference; an odd number keeps the
# median one round's ratio (with an even number it is the mean of the middle two).
set -euo pipefail
cd "$(dirname "$0")/.."
REFERENCE=
if [ "${1:-}" = --reference ]; then
  REFERENCE=$(realpath "$2")
  shift 2
fi
SECS=${1:-10}
OUT=${OUT:-$(mktemp -d)}
MEMORY_REQUESTS=${MEMORY_REQUESTS:-1000000}
ROUNDS=${ROUNDS:-3}
case $ROUNDS in
  '' | *[!0-9]*) ROUNDS_OK= ;;
  *) ROUNDS_OK=$((10#$ROUNDS > 0)) ;;
esac
[ "$ROUNDS_OK" = 1 ] || { echo "ROUNDS must be a positive whole number, not '$ROUNDS'" >&2; exit 2; }
ROUNDS=$((10#$ROUNDS))
mkdir -p "$OUT"
BIN=$(mktemp -d)
go build -o "$BIN/signatory" ./cmd/signatory
go build -o "$BIN/signatory-bench" ./cmd/signatory-bench
echo "results in $OUT" >&2

echo "== floor" >&2
go test ./internal/tezos -run '^$' -bench 'Floor' -benchtime 2s | tee "$OUT/floor.txt" >&2
go test ./internal/watermark/file -run '^$' -bench 'FsyncFloor|DatasyncFloor|Advance/serial' -benchtime 2s | tee -a "$OUT/floor.txt" >&2
go test ./internal/server -run '^$' -bench 'LoopbackFloor' -benchtime 2s | tee -a "$OUT/floor.txt" >&2
go test ./internal/signer -run '^$' -bench 'SignGeneric|Decode' -benchmem -benchtime 2s | tee -a "$OUT/floor.txt" >&2

PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap stop EXIT

wait_healthy() { # $1 log file
  for _ in $(seq 300); do curl -sf http://127.0.0.1:9583/healthz >/dev/null && return; sleep 0.1; done
  echo "daemon did not start" >&2; cat "$1" >&2; exit 1
}

bench() { # name, args…: one load-tool run against the process $PID, its CPU per request included
  local name=$1; shift
  "$BIN/signatory-bench" --json -d "${SECS}s" --warmup 2s --pid "$PID" "$@" > "$OUT/$name.json"
  printf '%s %s\n' "$name" "$(tr -d '\n ' < "$OUT/$name.json")" >&2
}

echo "== the HTTP floor: a trivial server, its own process" >&2
"$BIN/signatory-bench" trivial-server 127.0.0.1:0 > "$OUT/trivial.url" &
PID=$!
for _ in $(seq 100); do [ -s "$OUT/trivial.url" ] && break; sleep 0.05; done
TRIVIAL=$(head -1 "$OUT/trivial.url")
for c in 1 8 64; do bench "selftest-c$c" --url "$TRIVIAL" -c "$c"; done
stop

# One key per curve (tz1, tz2, tz3, tz4), file vault, each allowed consensus and transactions.
KEYDIR=$(mktemp -d)
"$BIN/signatory-bench" burst-config "$KEYDIR" -n 4 --curves tz1,tz2,tz3,tz4 --generic >&2
IFS=, read -r K1 K2 K3 K4 < "$KEYDIR/keys.txt"
declare -A KEY=([tz1]=$K1 [tz2]=$K2 [tz3]=$K3 [tz4]=$K4)

run_daemon() { # $1 config, $2 watermark driver (or "chain-files": the file store without its journal)
  if [ "$2" = chain-files ]; then
    sed -e 's|^  driver: file$|  driver: file\n  config: {journal: false}|' "$1" > "$1.$2.yaml"
  else
    sed -e "s|^  driver: file\$|  driver: $2|" "$1" > "$1.$2.yaml"
  fi
  # Benchmarks measure signing, not the log: warn level (refusals and errors only).
  "$BIN/signatory" serve -c "$1.$2.yaml" --log warn --no-list > "$OUT/daemon-$2.log" 2>&1 &
  PID=$!
  wait_healthy "$OUT/daemon-$2.log"
}

echo "== the daemon" >&2
run_daemon "$KEYDIR/signatory.yaml" file
for k in tz1 tz2 tz3 tz4; do
  for c in 1 8 64; do bench "generic-$k-c$c" -w generic --keys "${KEY[$k]}" -c "$c"; done
done
bench "consensus-file-tz1-c1" -w consensus --keys "${KEY[tz1]}" -c 1
bench "consensus-file-tz1-c8" -w consensus --keys "${KEY[tz1]}" -c 8
bench "consensus-file-tz4-c1" -w consensus --keys "${KEY[tz4]}" -c 1
stop

run_daemon "$KEYDIR/signatory.yaml" chain-files
bench "consensus-chain-files-tz1-c1" -w consensus --keys "${KEY[tz1]}" -c 1
bench "consensus-chain-files-tz1-c8" -w consensus --keys "${KEY[tz1]}" -c 8
stop

run_daemon "$KEYDIR/signatory.yaml" mem
bench "consensus-mem-tz1-c1" -w consensus --keys "${KEY[tz1]}" -c 1
bench "consensus-mem-tz1-c8" -w consensus --keys "${KEY[tz1]}" -c 8
stop

# fresh_config <config> <name>: a copy of config with its own empty base_dir, printed.
fresh_config() {
  local dir
  dir=$(mktemp -d)
  sed -e "s|^base_dir: .*|base_dir: $dir/data|" "$1" > "$dir/$2.yaml"
  echo "$dir/$2.yaml"
}

# serve_with <binary> <config> <log>: start a signer with nothing but its config (its defaults,
# its default log level), wait until it is ready.
serve_with() {
  "$1" serve -c "$2" > "$3" 2>&1 &
  PID=$!
  wait_healthy "$3"
}

echo "== a baker's attestations under a flood: 64 clients of generic tz1 transfers" >&2
# flood_runs <name> <config>: the attestation stream (1 client) alone, then during the flood.
flood_runs() {
  serve_with "$BIN/signatory" "$(fresh_config "$2" "flood-$1")" "$OUT/daemon-flood-$1.log"
  bench "flood-$1-quiet" -w consensus --keys "${KEY[tz1]}" -c 1
  # The flood's clients run niced: on a machine of two cores they stand for clients elsewhere,
  # and would otherwise take the cores from the signer and the baker alike.
  nice -n 19 "$BIN/signatory-bench" --json -d "$((SECS + 4))s" --warmup 0s -w generic --keys "${KEY[tz1]}" -c 64 > "$OUT/flood-$1-generic.json" &
  local FLOODPID=$!
  sleep 2
  bench "flood-$1-baker" -w consensus --keys "${KEY[tz1]}" -c 1
  wait "$FLOODPID"
  stop
}
flood_runs default "$KEYDIR/signatory.yaml"
sed -e 's|^  utility_address: \(.*\)$|  utility_address: \1\n  max_generic_in_flight: 1|' "$KEYDIR/signatory.yaml" > "$KEYDIR/cap1.yaml"
flood_runs cap1 "$KEYDIR/cap1.yaml"

echo "== 10,000 keys (tz1; tz1 and tz4 in turn): start-up to ready, memory, a burst" >&2
# ten_thousand <binary> <name> <curves>: time from exec to /healthz ready, RSS then, the burst,
# peak RSS; written to $OUT/keys10k-<name>.json and burst-10k-<name>.json.
ten_thousand() {
  local dir t0 t1 rss hwm
  dir=$(mktemp -d)
  "$BIN/signatory-bench" burst-config "$dir" -n 10000 --curves "$3" >&2
  t0=$(date +%s%N)
  "$1" serve -c "$dir/signatory.yaml" > "$OUT/daemon-10k-$2.log" 2>&1 &
  PID=$!
  # polled by one process, every 2 ms: a loop of curl took a third of the cores from the signer
  "$BIN/signatory-bench" wait-ready --pid "$PID" || { cat "$OUT/daemon-10k-$2.log" >&2; exit 1; }
  t1=$(date +%s%N)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
  bench "burst-10k-$2" -w burst --keys "@$dir/keys.txt"
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
  printf '{"ready_ms": %s, "rss_kib_ready": %s, "rss_kib_peak": %s}\n' "$(((t1 - t0) / 1000000))" "$rss" "$hwm" > "$OUT/keys10k-$2.json"
  cat "$OUT/keys10k-$2.json" >&2
  stop
}
ten_thousand "$BIN/signatory" ours-tz1 tz1
ten_thousand "$BIN/signatory" ours-tz1tz4 tz1,tz4

if [ -n "$REFERENCE" ]; then
  echo "== side by side with $REFERENCE: default configs and log levels, alternating, $ROUNDS rounds" >&2
  # side <load> <bench args...>: the load against both, $ROUNDS rounds, ours first in odd rounds and
  # the reference first in even ones, so that a machine growing slower or faster through a load's
  # rounds favours neither. The machine's speed moves by 10–25 % between minutes here (the same
  # binary, run twice); a round's ratio compares two runs a few seconds apart, and the median of
  # the rounds' ratios is the load's ratio.
  side() {
    local load=$1 round who bin order
    shift
    for round in $(seq "$ROUNDS"); do
      order="ours ref"
      [ $((round % 2)) = 0 ] && order="ref ours"
      for who in $order; do
        bin=$BIN/signatory
        [ "$who" = ref ] && bin=$REFERENCE
        serve_with "$bin" "$(fresh_config "$KEYDIR/signatory.yaml" "side-$who")" "$OUT/daemon-side-$load-$who-$round.log"
        bench "side-$load-$who-$round" "$@"
        stop
      done
    done
  }
  side generic-tz1-c64 -w generic --keys "${KEY[tz1]}" -c 64
  side generic-tz2-c8 -w generic --keys "${KEY[tz2]}" -c 8
  side generic-tz3-c8 -w generic --keys "${KEY[tz3]}" -c 8
  side attestation-c1 -w consensus --keys "${KEY[tz1]}" -c 1
  side attestation-c8 -w consensus --keys "${KEY[tz1]}" -c 8
  ten_thousand "$REFERENCE" ref-tz1 tz1
fi

echo "== burst: 256 keys (tz1 and tz4 in turn), file vault, file watermark" >&2
BURSTDIR=$(mktemp -d)
"$BIN/signatory-bench" burst-config "$BURSTDIR" -n 256 --curves tz1,tz4 >&2
"$BIN/signatory" serve -c "$BURSTDIR/signatory.yaml" --log warn --no-list > "$OUT/daemon-burst.log" 2>&1 &
PID=$!
wait_healthy "$OUT/daemon-burst.log"
bench "burst-file-256" -w burst --keys "$(cat "$BURSTDIR/keys.txt")"
stop

# serve_burst <dir> <name>: append consensus policies for the key hashes of dir/keys.txt to
# dir/signatory.yaml, serve it, run the burst, stop.
serve_burst() {
  tr ',' '\n' < "$1/keys.txt" | sed -e '/^$/d' -e 's|^\(.*\)$|  \1:\n    allow: {preattestation: , attestation: }|' >> "$1/signatory.yaml"
  "$BIN/signatory" serve -c "$1/signatory.yaml" --log warn --no-list > "$OUT/daemon-$2.log" 2>&1 &
  PID=$!
  wait_healthy "$OUT/daemon-$2.log"
  bench "$2" -w burst --keys "$(cat "$1/keys.txt")"
  stop
}
pkhs_of() { # signatory list --json on stdin → comma-separated key hashes
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).map(k=>k.pkh).join(",")))'
}

LIB=$(find /usr/lib /usr/local/lib -name libsofthsm2.so 2>/dev/null | head -1 || true)
if command -v softhsm2-util >/dev/null && [ -n "$LIB" ]; then
  echo "== burst: 256 keys (tz1 and tz3 in turn) on SoftHSM2, file watermark" >&2
  HSMDIR=$(mktemp -d); mkdir "$HSMDIR/tokens"
  echo "directories.tokendir = $HSMDIR/tokens" > "$HSMDIR/softhsm2.conf"
  export SOFTHSM2_CONF="$HSMDIR/softhsm2.conf"
  softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >&2
  printf 'base_dir: %s\nserver: {address: 127.0.0.1:6732, utility_address: 127.0.0.1:9583}\nvaults:\n  hsm:\n    driver: pkcs11\n    config: {library_path: %s, token_label: bench, pin: "1234", sessions: 8}\nwatermark:\n  driver: file\ntezos:\n' \
    "$HSMDIR/data" "$LIB" > "$HSMDIR/signatory.yaml"
  "$BIN/signatory" generate -c "$HSMDIR/signatory.yaml" -v hsm -t tz1 -n 128 --json > "$HSMDIR/tz1.json"
  "$BIN/signatory" generate -c "$HSMDIR/signatory.yaml" -v hsm -t tz3 -n 128 --json > "$HSMDIR/tz3.json"
  "$BIN/signatory" list -c "$HSMDIR/signatory.yaml" --json | pkhs_of > "$HSMDIR/keys.txt"
  serve_burst "$HSMDIR" burst-softhsm-256
  unset SOFTHSM2_CONF
else
  echo "softhsm2 not installed: no SoftHSM2 burst" >&2
fi

if GOBIN=$BIN go install github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6 2>/dev/null; then
  echo "== burst: 256 keys (tz3 and tz2 in turn) on local-kms, file watermark" >&2
  KMSDIR=$(mktemp -d)
  PORT=18080 KMS_DATA_PATH="$KMSDIR" KMS_REGION=us-east-1 KMS_ACCOUNT_ID=111122223333 "$BIN/local-kms" > "$OUT/local-kms.log" 2>&1 &
  KMSPID=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18080 && break; sleep 0.1; done
  "$BIN/signatory-bench" kms-keys -n 256 --endpoint http://127.0.0.1:18080 > "$KMSDIR/arns.txt"
  printf 'base_dir: %s\nserver: {address: 127.0.0.1:6732, utility_address: 127.0.0.1:9583}\nvaults:\n  kms:\n    driver: awskms\n    config: {region: us-east-1, access_key_id: AKIDLOCALKMS, secret_access_key: local-kms-secret, endpoint: "http://127.0.0.1:18080"}\nwatermark:\n  driver: file\ntezos:\n' \
    "$KMSDIR/data" > "$KMSDIR/signatory.yaml"
  "$BIN/signatory" list -c "$KMSDIR/signatory.yaml" --json | pkhs_of > "$KMSDIR/keys.txt"
  serve_burst "$KMSDIR" burst-localkms-256
  kill "$KMSPID"; wait "$KMSPID" 2>/dev/null || true
else
  echo "local-kms could not be installed: no local-kms burst" >&2
fi

if [ "$MEMORY_REQUESTS" != "0" ]; then
  echo "== memory: RSS after 10 000 requests and after $MEMORY_REQUESTS (mixed, 16 clients, file watermark)" >&2
  run_daemon "$KEYDIR/signatory.yaml" file
  rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
  "$BIN/signatory-bench" --json -n 10000 --warmup 0s -w mixed --keys "${KEY[tz1]}" -c 16 > "$OUT/memory-10k.json"
  R1=$(rss)
  "$BIN/signatory-bench" --json -n $((MEMORY_REQUESTS - 10000)) --warmup 0s -w mixed --keys "${KEY[tz1]}" -c 16 > "$OUT/memory-rest.json"
  R2=$(rss)
  printf '{"rss_kib_after_10k": %s, "rss_kib_after_all": %s, "requests": %s}\n' "$R1" "$R2" "$MEMORY_REQUESTS" > "$OUT/memory.json"
  cat "$OUT/memory.json" >&2
  stop
fi

# Markdown summary.
printf '| run | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | signer CPU µs/req | statuses |\n|---|---|---|---|---|---|---|---|---|\n'
for f in "$OUT"/selftest-*.json "$OUT"/generic-*.json "$OUT"/consensus-*.json "$OUT"/burst-*.json; do
  n=$(basename "$f" .json)
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const l = r.burst ? r.burst.ms : r.latency_ms;
    const st = Object.entries(r.statuses).map(([k, v]) => k + "×" + v).join(" ");
    const cpu = (r.signer_cpu_us_per_request || 0).toFixed(1);
    console.log(`| ${process.argv[2]} | ${r.throughput_rps.toFixed(0)} | ${l.P50.toFixed(3)} | ${l.P90.toFixed(3)} | ${l.P99.toFixed(3)} | ${l.P999.toFixed(3)} | ${l.Max.toFixed(3)} | ${cpu} | ${st} |`);
  ' "$f" "$n"
done
go run ./tools/benchchart "$OUT" "$OUT/benchmarks.png"
echo "chart: $OUT/benchmarks.png" >&2

printf '\n| baker under a flood | quiet p50 / p99 ms | flood p50 / p99 ms | flood p99 ÷ quiet p99 | generic req/s during the flood |\n|---|---|---|---|---|\n'
for v in default cap1; do
  node -e '
    const fs = require("fs"), d = process.argv[1], v = process.argv[2];
    const q = JSON.parse(fs.readFileSync(`${d}/flood-${v}-quiet.json`)), b = JSON.parse(fs.readFileSync(`${d}/flood-${v}-baker.json`));
    const g = JSON.parse(fs.readFileSync(`${d}/flood-${v}-generic.json`));
    const name = v === "default" ? "scheduler (default)" : "generic held to one core (the former default)";
    console.log(`| ${name} | ${q.latency_ms.P50.toFixed(2)} / ${q.latency_ms.P99.toFixed(2)} | ${b.latency_ms.P50.toFixed(2)} / ${b.latency_ms.P99.toFixed(2)} | ${(b.latency_ms.P99 / q.latency_ms.P99).toFixed(2)} | ${g.throughput_rps.toFixed(0)} |`);
  ' "$OUT" "$v"
done

printf '\n| 10,000 keys | ready ms | RSS ready MiB | RSS peak MiB | burst: last signature ms (each burst, max) |\n|---|---|---|---|---|\n'
for f in "$OUT"/keys10k-*.json; do
  n=$(basename "$f" .json); n=${n#keys10k-}
  node -e '
    const fs = require("fs"), d = process.argv[1], n = process.argv[2];
    const k = JSON.parse(fs.readFileSync(`${d}/keys10k-${n}.json`)), b = JSON.parse(fs.readFileSync(`${d}/burst-10k-${n}.json`));
    console.log(`| ${n} | ${k.ready_ms} | ${(k.rss_kib_ready / 1024).toFixed(0)} | ${(k.rss_kib_peak / 1024).toFixed(0)} | p50 ${b.burst.ms.P50.toFixed(0)}, max ${b.burst.ms.Max.toFixed(0)} (${b.burst.bursts} bursts) |`);
  ' "$OUT" "$n"
done

if [ -n "$REFERENCE" ]; then
  printf '\n| load (ours ÷ reference: median of %s rounds (each round)) | throughput | signer CPU per request | p99 |\n|---|---|---|---|\n' "$ROUNDS"
  for load in generic-tz1-c64 generic-tz2-c8 generic-tz3-c8 attestation-c1 attestation-c8; do
    node -e '
      const fs = require("fs"), d = process.argv[1], l = process.argv[2], n = +process.argv[3];
      const r = (who, i) => JSON.parse(fs.readFileSync(`${d}/side-${l}-${who}-${i}.json`));
      const rounds = Array.from({length: n}, (_, i) => i + 1);
      const ratio = (f) => {
        const each = rounds.map(i => f(r("ours", i)) / f(r("ref", i)));
        const s = [...each].sort((a, b) => a - b), m = s.length >> 1;
        const median = s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
        return `**${median.toFixed(2)}** (${each.map(x => x.toFixed(2)).join(" / ")})`;
      };
      console.log(`| ${l} | ${ratio(x => x.throughput_rps)} | ${ratio(x => x.signer_cpu_us_per_request)} | ${ratio(x => x.latency_ms.P99)} |`);
    ' "$OUT" "$load" "$ROUNDS"
  done
fi
