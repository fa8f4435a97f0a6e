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
#    watermark store, and for each share it serves (after a resharing, the old and the new one
#    for a while) the consensus kinds, proofs of possession over the group key, and share_of: a
#    share signs no consensus operation on a chain until its store holds a history there. A new
#    group key gets it with `watermark floor --level 0`; after a resharing each new share takes
#    the old group's highest marks with `threshold marks` (step 6). The coordinator's vault config
#    is the one the ceremony printed.
MAINNET=NetXdQprcVkpaWU
member_config() { # index share-address…: the member's config, serving those shares
  local i=$1 share
  shift
  {
    echo "base_dir: $WORK/member-$i/data"
    echo "server:"
    echo "  address: 127.0.0.1:$((PORT + i))"
    echo "  utility_address: 127.0.0.1:$((PORT + 10 + i))"
    echo "vaults:"
    echo "  share:"
    echo "    driver: file"
    echo "    config:"
    echo "      file: $WORK/member-$i/secret_keys"
    echo "watermark:"
    echo "  driver: file"
    echo "tezos:"
    for share in "$@"; do
      echo "  $share:"
      echo "    share_of: $GROUP_PK"
      echo "    allow_proof_of_possession_for: [$GROUP_PK]"
      echo "    allow: {block: , preattestation: , attestation: }"
    done
  } > "$WORK/member-$i/signatory.yaml"
}
floor() { # index share-address: a new group key's history, level 0
  "$SIG" -c "$WORK/member-$1/signatory.yaml" watermark floor --key "$2" --chain $MAINNET --level 0 >/dev/null 2>&1 ||
    fail "member $1: watermark floor"
}
take_marks() { # index share-address old-coordinator-config: the old group's highest marks
  "$SIG" -c "$WORK/member-$1/signatory.yaml" threshold marks --key "$2" --from "$3" --chain $MAINNET \
    >> "$WORK/member-$1/marks.txt" 2>&1 || fail "member $1: threshold marks (see $WORK/member-$1/marks.txt)"
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
for i in 1 2 3; do member_config $i "$(share_key $i 1)"; floor $i "$(share_key $i 1)"; start $i; done
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
declare -A OLD
for i in 1 2 3; do OLD[$i]=$(share_key $i 1); done
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

# The new shares' history. The old group's coordinator stops; then each member in turn, stopped,
# takes the old group's highest marks for its new share from the old members still serving
# their old shares (enough of them must answer: here 2 of the 3), and starts again serving its
# new share and its old one (which the next members ask); then the coordinator starts over the
# new group.
new_history() { # old-coordinator-config member…
  local old=$1 i
  shift
  for i in "$@"; do
    stop $i
    # shellcheck disable=SC2086
    member_config $i "$(share_key $i 1)" ${OLD[$i]:-}
    take_marks $i "$(share_key $i 1)" "$old"
    start $i
  done
  coordinator_config 1
  start 0
}
stop 0; cp "$WORK/coordinator.yaml" "$WORK/coordinator-3.yaml"
new_history "$WORK/coordinator-3.yaml" 1 2 3 4
grep -q "attestation.*level 1" "$WORK/member-4/marks.txt" || fail "member 4 did not take level 1 from the old group"
[ "$(curl -s "$C/bls_prove_possession/$GROUP")" == "$POP" ] || fail "the proof of possession changed"
out=$(post "$(attestation 2)"); echo "level 2, four members: $out"
[[ $out == *' 200' ]] || fail "level 2 was not signed by the reshared group"

# 7. Replace member 2 by member 5 (threshold 3 of 4): member 2 deals and leaves, told to erase
#    its share; member 5 receives. The new shares take the history of the group of four (3 of its
#    members must answer), then member 2 stops.
for i in 1 2 3 4; do OLD[$i]=$(share_key $i 1); done
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
stop 0; cp "$WORK/coordinator.yaml" "$WORK/coordinator-4.yaml"
new_history "$WORK/coordinator-4.yaml" 1 3 4 5
stop 2
[ "$(curl -s "$C/bls_prove_possession/$GROUP")" == "$POP" ] || fail "the proof of possession changed"
out=$(post "$(attestation 3)"); echo "level 3, member 2 replaced: $out"
[[ $out == *' 200' ]] || fail "level 3 was not signed after the replacement"
echo "dkg walkthrough OK ($WORK)"
