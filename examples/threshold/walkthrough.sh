#!/usr/bin/env bash
# A threshold tz4 key, 2 of 3, on one machine: split a new key, start three member signers and a
# coordinator, sign through the coordinator, then lose members. docs/threshold.md explains every
# step; on real machines each member runs on its own host under its own operator.
#
#   bash examples/threshold/walkthrough.sh          # from the repository's root; needs Go and curl
#
# WORK (a new temp folder by default) receives the binary, the shares, the configs and the logs;
# PORT (default 6760) is the coordinator's signing port, the members listen on PORT+1 … PORT+3
# and each utility port is its signing port + 10. SIGNATORY may name an already built binary.
set -euo pipefail
WORK=${WORK:-$(mktemp -d)}
PORT=${PORT:-6760}
SIG=${SIGNATORY:-$WORK/signatory}
mkdir -p "$WORK"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
fail() { echo "walkthrough FAILED: $*" >&2; exit 1; }

[ -x "$SIG" ] || go build -o "$SIG" ./cmd/signatory

# 1. Split a new tz4 key into 3 shares, any 2 of which sign. Each share goes to
#    $WORK/member-<i>/secret_keys (octez-client's format, mode 0600). An existing key is split
#    instead with `signatory threshold split -t 2 -n 3 --secret-keys-dir D < file-holding-BLsk`.
"$SIG" threshold split -t 2 -n 3 --generate --secret-keys-dir "$WORK" > "$WORK/split.txt"
GROUP=$(sed -n 2p "$WORK/split.txt" | tr -d ' ')      # the baker's tz4 key
GROUP_PK=$(sed -n 3p "$WORK/split.txt" | tr -d ' ')   # its BLpk
mapfile -t SHARES < <(awk '/share key:/ {print $3}' "$WORK/split.txt")
echo "group key $GROUP, shares ${SHARES[*]}"

# 2. One config per member: its share in a file vault, its own watermark store, a consensus
#    policy for the share's address and proofs of possession over the group key (for its reveal;
#    over any other key a member refuses them).
for i in 1 2 3; do
  cat > "$WORK/member-$i/signatory.yaml" <<YAML
base_dir: $WORK/member-$i/data
server:
  address: 127.0.0.1:$((PORT + i))
  utility_address: 127.0.0.1:$((PORT + 10 + i))
vaults:
  share:
    driver: file
    config:
      file: $WORK/member-$i/secret_keys
watermark:
  driver: file
tezos:
  ${SHARES[$((i - 1))]}:
    allow_proof_of_possession_for: [$GROUP_PK]
    allow:
      block:
      preattestation:
      attestation:
YAML
done

# 3. The coordinator: a threshold vault whose key is the group key, and the baker's policy for it.
cat > "$WORK/coordinator.yaml" <<YAML
base_dir: $WORK/coordinator-data
server:
  address: 127.0.0.1:$PORT
  utility_address: 127.0.0.1:$((PORT + 10))
vaults:
  baker:
    driver: threshold
    config:
      public_key: $GROUP_PK
      threshold: 2
      timeout: 10s
      members:
        - { index: 1, url: http://127.0.0.1:$((PORT + 1)), key: ${SHARES[0]} }
        - { index: 2, url: http://127.0.0.1:$((PORT + 2)), key: ${SHARES[1]} }
        - { index: 3, url: http://127.0.0.1:$((PORT + 3)), key: ${SHARES[2]} }
watermark:
  driver: file
tezos:
  $GROUP:
    allow_proof_of_possession: true
    allow:
      block:
      preattestation:
      attestation:
YAML

# 4. Start the members, then the coordinator; each is ready when its /healthz says so.
ready() { # utility port: wait (at most 120 tries) for /healthz to answer 200
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep 1
  done
  return 1
}
for i in 1 2 3; do
  "$SIG" serve -c "$WORK/member-$i/signatory.yaml" >"$WORK/member-$i/log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do ready $((PORT + 10 + i)) || fail "member $i did not start: $WORK/member-$i/log"; done
"$SIG" serve -c "$WORK/coordinator.yaml" >"$WORK/coordinator.log" 2>&1 &
pids+=($!)
ready $((PORT + 10)) || fail "the coordinator did not start: $WORK/coordinator.log"
curl -s "http://127.0.0.1:$((PORT + 10))/healthz"; echo

# 5. Sign through the coordinator, as a baker would.
C=http://127.0.0.1:$PORT
attestation() { # level variant: a tag-41 (BLS-mode) attestation on mainnet's chain, round 0
  printf '137a06a770%02x%062d29%08x00000000%064d' "$2" 0 "$1" 0
}
post() { # payload: prints the answer's body and HTTP status on one line
  curl -s -X POST -H 'Content-Type: application/json' -d "\"$1\"" "$C/keys/$GROUP" -w ' %{http_code}' | tr -d '\n'
}
stop() { kill -9 "$1"; wait "$1" 2>/dev/null || true; } # kill -9, quietly
echo "public key: $(curl -s "$C/keys/$GROUP")"
echo "proof of possession: $(curl -s "$C/bls_prove_possession/$GROUP")"
out=$(post "$(attestation 1 1)"); echo "level 1: $out"
[[ $out == *' 200' ]] || fail "level 1 was not signed"
again=$(post "$(attestation 1 1)"); echo "level 1 again: $again"
[[ $again == "$out" ]] || fail "the same bytes got another answer"
out=$(post "$(attestation 1 2)"); echo "level 1, other bytes: $out"
[[ $out == *' 409' ]] || fail "a conflicting attestation was not refused with 409"

# 6. Lose one member (kill -9): the two left still sign. Lose a second: 503, naming them.
stop "${pids[0]}"
out=$(post "$(attestation 2 1)"); echo "level 2, member 1 down: $out"
[[ $out == *' 200' ]] || fail "one member down stopped signing"
stop "${pids[1]}"
out=$(post "$(attestation 3 1)"); echo "level 3, members 1 and 2 down: $out"
[[ $out == *' 503' ]] || fail "two members down was not 503"
echo "walkthrough OK ($WORK)"
