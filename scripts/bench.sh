#!/usr/bin/env bash
# Reproduce docs/benchmarks.md: the machine's floor (go test -bench) and the daemon under the
# project's load tool, per curve, watermark backend and concurrency. Results go to $OUT as JSON
# and a markdown summary on stdout. Usage: ./scripts/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
BIN=$(mktemp -d)
go build -o "$BIN/signatory" ./cmd/signatory
go build -o "$BIN/signatory-bench" ./cmd/signatory-bench
echo "results in $OUT" >&2

echo "== floor" >&2
go test ./internal/tezos -run '^$' -bench 'Floor' -benchtime 2s | tee "$OUT/floor.txt" >&2
go test ./internal/watermark/file -run '^$' -bench 'FsyncFloor' -benchtime 2s | tee -a "$OUT/floor.txt" >&2
go test ./internal/server -run '^$' -bench 'LoopbackFloor' -benchtime 2s | tee -a "$OUT/floor.txt" >&2

run_daemon() { # $1 watermark driver; sets PID
  local dir; dir=$(mktemp -d)
  cp examples/secret_keys.json "$dir/keys.json"; chmod 600 "$dir/keys.json"
  sed -e "s|base_dir: ./.signatory-data|base_dir: $dir/data|" -e "s|file: examples/secret_keys.json|file: $dir/keys.json|" \
      -e "s|^  driver: file\$|  driver: $1|" examples/signatory.yaml > "$dir/signatory.yaml"
  # Benchmarks measure signing, not the log: warn level (refusals and errors only).
  "$BIN/signatory" serve -c "$dir/signatory.yaml" --log warn --no-list > "$dir/log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:9583/healthz >/dev/null && return; sleep 0.1; done
  echo "daemon did not start" >&2; cat "$dir/log" >&2; exit 1
}

declare -A KEY=([tz1]=tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf [tz2]=tz2QPsZoZse4eeahhg5DdfnBDB4VbU1PwgxN
                [tz3]=tz3ZbCsUveF3Q6WUNkThT1wyJyhPunanaAXK [tz4]=tz4XXtsYav3fZz2FSDa7hcx4F8sh8SaDWNME)
bench() { # name, args…
  local name=$1; shift
  "$BIN/signatory-bench" --json -d "${SECS}s" --warmup 2s "$@" > "$OUT/$name.json"
  printf '%s %s\n' "$name" "$(tr -d '\n ' < "$OUT/$name.json")" >&2
}

echo "== self-test (the tool against a trivial server)" >&2
for c in 1 8 64; do bench "selftest-c$c" --self-test -c "$c"; done

run_daemon file
for c in 1 8 64; do bench "generic-tz1-c$c" -w generic --keys "${KEY[tz1]}" -c "$c"; done
for k in tz2 tz3; do bench "generic-$k-c8" -w generic --keys "${KEY[$k]}" -c 8; done
bench "consensus-file-tz4-c1" -w consensus --keys "${KEY[tz4]}" -c 1   # the example's tz4 key signs consensus only
bench "consensus-file-tz1+tz4-c2" -w consensus --keys "${KEY[tz1]},${KEY[tz4]}" -c 2
bench "consensus-file-tz1-c1" -w consensus --keys "${KEY[tz1]}" -c 1
bench "consensus-file-tz1-c8" -w consensus --keys "${KEY[tz1]}" -c 8
ps -o rss= -p "$PID" > "$OUT/rss-after-file.txt"
kill "$PID"; wait "$PID" || true

run_daemon mem
bench "consensus-mem-tz1-c1" -w consensus --keys "${KEY[tz1]}" -c 1
bench "consensus-mem-tz1-c8" -w consensus --keys "${KEY[tz1]}" -c 8
kill "$PID"; wait "$PID" || true

# Markdown summary.
printf '| run | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | statuses |\n|---|---|---|---|---|---|---|---|\n'
for f in "$OUT"/*.json; do
  n=$(basename "$f" .json)
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
    const l = r.latency_ms;
    const st = Object.entries(r.statuses).map(([k, v]) => k + "×" + v).join(" ");
    console.log(`| ${process.argv[2]} | ${r.throughput_rps.toFixed(0)} | ${l.P50.toFixed(3)} | ${l.P90.toFixed(3)} | ${l.P99.toFixed(3)} | ${l.P999.toFixed(3)} | ${l.Max.toFixed(3)} | ${st} |`);
  ' "$f" "$n"
done
