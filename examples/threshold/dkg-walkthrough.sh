#!/usr/bin/env bash
# A threshold tz4 key that no machine ever holds, on one machine: three members generate it
# together (no dealer), serve it through a coordinator, reshare it to four members (threshold
# 3), then replace one member; the group key and its proof of possession never change.
# docs/threshold.md explains every step; on real machines each member runs on its own host under
# its own operator, and only the ceremony config (public: identities and addresses) is shared.
#
#   bash examples/threshold/dkg-walkthrough.sh      # from the repository's root; needs Go and curl
#
# WORK (a new temp folder by default) receives the binary, the keys, the configs and the logs.
# PORT (default 6800): the coordinator signs on PORT, member i on PORT+i (utility ports +10), and
# member i's ceremony listener is PORT+20+i. SIGNATORY may name an already built binary.
set -euo pipefail
WORK=${WORK:-$(mktemp -d)}
PORT=${PORT:-6800}
SIG=${SIGNATORY:-$WORK/signatory}
mkdir -p "$WORK"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
fail() { echo "dkg walkthrough FAILED: $*" >&2; exit 1; }
[ -x "$SIG" ] || go build -o "$SIG" ./cmd/signatory

# 1. Each member makes its identity key on its own machine and sends only the public part
#    (BLpk…) to the others.
ID=()
for i in 1 2 3 4 5; do
  mkdir -p "$WORK/member-$i"
  ID[i]=$("$SIG" threshold identity --out "$WORK/member-$i/identity" | sed -n 2p | tr -d ' ')
done

# 2. The ceremony config, the same at every member: name, threshold and each member's index,
#    identity, ceremony address and signing URL.
member_line() { # index: one member of a ceremony config
  echo "  - {index: $1, identity: ${ID[$1]}, address: 127.0.0.1:$((PORT + 20 + $1)), url: http://127.0.0.1:$((PORT + $1))}"
}
{ echo "name: demo"; echo "threshold: 2"; echo "members:"; for i in 1 2 3; do member_line $i; done; } > "$WORK/ceremony.yaml"

# 3. Every member runs its part at the same time. Each adds its own share to its own
#    secret_keys file, only once all have confirmed the same outcome, and prints the group key,
#    the transcript hash (compare them out of band), the share keys and the coordinator's config.
run_members() { # ceremony-file member-index:extra-flags…: run those members, wait for all
  local file=$1 spec i flags
  shift
  local procs=()
  for spec in "$@"; do
    i=${spec%%:*}; flags=${spec#*:}
    # shellcheck disable=SC2086
    "$SIG" threshold dkg --ceremony "$file" --identity "$WORK/member-$i/identity" \
      --secret-keys "$WORK/member-$i/secret_keys" $flags > "$WORK/member-$i/ceremony.txt" 2> "$WORK/member-$i/ceremony.log" &
    procs+=($!)
  done
  for p in "${procs[@]}"; do wait "$p" || fail "a member's ceremony failed: see $WORK/member-*/ceremony.log"; done
}
run_members "$WORK/ceremony.yaml" 1: 2: 3:
GROUP=$(sed -n 3p "$WORK/member-1/ceremony.txt" | tr -d ' ')      # the baker's tz4 key
GROUP_PK=$(sed -n 4p "$WORK/member-1/ceremony.txt" | tr -d ' ')   # its BLpk
cat "$WORK/member-1/ceremony.txt"
same_outcome() { # member indices: they all print the same group key and transcript
  local i
  for i in "$@"; do
    [ "$(sed -n 3,6p "$WORK/member-$i/ceremony.txt")" == "$(sed -n 3,6p "$WORK/member-$1/ceremony.txt")" ] ||
      fail "member $i reports another group key or transcript"
  done
}
same_outcome 1 2 3
share_key() { awk -v i="$1" '$1 == "Member" && $2 == i && $3 == "share" {print $5}' "$WORK/member-$2/ceremony.txt"; }        # index, from member
share_pk() { awk -v i="$1" '$1 == "Member" && $2 == i && $3 == "share" {print $6}' "$WORK/member-$2/ceremony.txt"; }

# 4. Members and the coordinator. A member's config: its secret_keys in a file vault, its own
#    watermark store, the consensus kinds for its share, proofs of possession over the group key,
#    and share_of: a share signs no consensus operation on a chain until its store holds a
#    history there, which the operator gives it with `watermark floor` (0 for a new group key;
#    after a resharing, the level the group has signed up to). The coordinator's vault config is
#    the one the ceremony printed.
MAINNET=NetXdQprcVkpaWU
member_config() { # index share-address floor-level
  cat > "$WORK/member-$1/signatory.yaml" <<YAML
base_dir: $WORK/member-$1/data
server:
  address: 127.0.0.1:$((PORT + $1))
  utility_address: 127.0.0.1:$((PORT + 10 + $1))
vaults:
  share:
    driver: file
    config:
      file: $WORK/member-$1/secret_keys
watermark:
  driver: file
tezos:
  $2:
    share_of: $GROUP_PK
    allow_proof_of_possession_for: [$GROUP_PK]
    allow:
      block:
      preattestation:
      attestation:
YAML
  "$SIG" -c "$WORK/member-$1/signatory.yaml" watermark floor --key "$2" --chain $MAINNET --level "$3" >/dev/null 2>&1 ||
    fail "member $1: watermark floor"
}
coordinator_config() { # member whose printed vault config to use
  {
    echo "base_dir: $WORK/coordinator-data"
    echo "server:"
    echo "  address: 127.0.0.1:$PORT"
    echo "  utility_address: 127.0.0.1:$((PORT + 10))"
    echo "vaults:"
    echo "  baker:"
    sed -n '/^The coordinator.s threshold vault config:$/,$p' "$WORK/member-$1/ceremony.txt" | tail -n +2 | sed 's/^/    /'
    echo "watermark:"
    echo "  driver: file"
    echo "tezos:"
    echo "  $GROUP:"
    echo "    allow_proof_of_possession: true"
    echo "    allow:"
    echo "      block:"
    echo "      preattestation:"
    echo "      attestation:"
  } > "$WORK/coordinator.yaml"
}
ready() { # utility port: wait (at most 120 tries) for /healthz to answer 200
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep 1
  done
  return 1
}
declare -A running
start() { # index (0: the coordinator)
  local name=member-$1 cfg=$WORK/member-$1/signatory.yaml
  [ "$1" = 0 ] && name=coordinator cfg=$WORK/coordinator.yaml
  "$SIG" serve -c "$cfg" >> "$WORK/$name.log" 2>&1 &
  running[$1]=$!; pids+=($!)
  ready $((PORT + 10 + $1)) || fail "$name did not start: $WORK/$name.log"
}
stop() { # index: stop that signer if it runs
  if [ -n "${running[$1]:-}" ]; then kill "${running[$1]}"; wait "${running[$1]}" 2>/dev/null || true; running[$1]=; fi
}
for i in 1 2 3; do member_config $i "$(share_key $i 1)" 0; start $i; done
coordinator_config 1
start 0

# 5. Sign through the coordinator, as a baker would.
C=http://127.0.0.1:$PORT
attestation() { # level: a tag-41 (BLS-mode) attestation on mainnet's chain, round 0
  printf '137a06a770%02x%062d29%08x00000000%064d' 1 0 "$1" 0
}
post() { # payload: the answer's body and HTTP status on one line
  curl -s -X POST -H 'Content-Type: application/json' -d "\"$1\"" "$C/keys/$GROUP" -w ' %{http_code}' | tr -d '\n'
}
POP=$(curl -s "$C/bls_prove_possession/$GROUP")
echo "public key: $(curl -s "$C/keys/$GROUP")"
echo "proof of possession: $POP"
out=$(post "$(attestation 1)"); echo "level 1: $out"
[[ $out == *' 200' ]] || fail "level 1 was not signed"

# 6. Reshare to four members, threshold 3: members 1-3 deal their shares again (each names its
#    current share with --old-alias), member 4 joins. The group key does not change.
{
  echo "name: demo-4"; echo "threshold: 3"; echo "members:"; for i in 1 2 3 4; do member_line $i; done
  echo "previous:"; echo "  public_key: $GROUP_PK"; echo "  threshold: 2"; echo "  members:"
  for i in 1 2 3; do
    echo "    - {index: $i, identity: ${ID[i]}, address: 127.0.0.1:$((PORT + 20 + i)), share: $(share_pk $i 1)}"
  done
} > "$WORK/reshare.yaml"
run_members "$WORK/reshare.yaml" "1:--alias demo-4 --old-alias dkg-demo" "2:--alias demo-4 --old-alias dkg-demo" \
  "3:--alias demo-4 --old-alias dkg-demo" "4:--alias demo-4"
same_outcome 1 2 3 4
[ "$(sed -n 3p "$WORK/member-4/ceremony.txt" | tr -d ' ')" == "$GROUP" ] || fail "the resharing changed the group key"
echo "reshared to 4 members: same group key $GROUP"
for i in 1 2 3 4; do stop $i; member_config $i "$(share_key $i 1)" 1; start $i; done  # level 1 was signed
stop 0; coordinator_config 1; start 0
[ "$(curl -s "$C/bls_prove_possession/$GROUP")" == "$POP" ] || fail "the proof of possession changed"
out=$(post "$(attestation 2)"); echo "level 2, four members: $out"
[[ $out == *' 200' ]] || fail "level 2 was not signed by the reshared group"

# 7. Replace member 2 by member 5 (threshold 3 of 4): member 2 deals and leaves, told to erase
#    its share; member 5 receives.
{
  echo "name: demo-5"; echo "threshold: 3"; echo "members:"; for i in 1 3 4 5; do member_line $i; done
  echo "previous:"; echo "  public_key: $GROUP_PK"; echo "  threshold: 3"; echo "  members:"
  for i in 1 2 3 4; do
    echo "    - {index: $i, identity: ${ID[i]}, address: 127.0.0.1:$((PORT + 20 + i)), share: $(share_pk $i 1)}"
  done
} > "$WORK/replace.yaml"
run_members "$WORK/replace.yaml" "1:--alias demo-5 --old-alias demo-4" "2:--old-alias demo-4" \
  "3:--alias demo-5 --old-alias demo-4" "4:--alias demo-5 --old-alias demo-4" "5:--alias demo-5"
same_outcome 1 3 4 5
grep -q "Erase this member's old share" "$WORK/member-2/ceremony.txt" || fail "member 2 was not told to erase its share"
stop 2
for i in 1 3 4 5; do stop $i; member_config $i "$(share_key $i 1)" 2; start $i; done  # up to level 2
stop 0; coordinator_config 1; start 0
[ "$(curl -s "$C/bls_prove_possession/$GROUP")" == "$POP" ] || fail "the proof of possession changed"
out=$(post "$(attestation 3)"); echo "level 3, member 2 replaced: $out"
[[ $out == *' 200' ]] || fail "level 3 was not signed after the replacement"
echo "dkg walkthrough OK ($WORK)"
