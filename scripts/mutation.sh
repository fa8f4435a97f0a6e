#!/usr/bin/env bash
# Mutation testing of the safety code. A mutant is the code with one rule broken: an operator
# changed by gremlins (pinned; a condition negated, a boundary moved, && for ||, continue for
# break, …) or a statement removed by tools/mutant (a guard's body, a call, an assignment), which
# gremlins cannot do. Each mutant runs against the tests of its package; one those pass is run
# again against the tests of every package under internal/ that imports it. A mutant all of them
# pass ("LIVED") is a rule no test holds: docs/testing.md says how each was killed or why it is
# equivalent. Not part of the test suite: it takes about an hour per package on two cores.
#
# Usage: ./scripts/mutation.sh [package ...]   (default: the safety packages below)
# STAGES="operators statements" (the default) chooses the kinds of mutant, e.g. STAGES=statements.
# SINCE=<git revision> mutates only the lines changed since it (a change's own run, after a whole
# run of the package before it).
# RESUME=1 goes on with a run that was stopped: the mutants already in .mutation/<package>.done
# are not run again (a whole package can take longer than one sitting).
# A mutant's run may take ten times what the tests take without one (at least a minute): a mutant
# that makes them hang counts as killed.
# Results in .mutation/: <package>.gremlins.txt (gremlins' list of mutants), <package>.log (every
# mutant run), <package>.done (each mutant's place and outcome), <package>.lived (the survivors,
# with their source line), and one summary line per package on stdout and in .mutation/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1

go install github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
gremlins="$(go env GOPATH)/bin/gremlins"
module=$(go list -m)
STAGES=${STAGES:-operators statements}
SINCE=${SINCE:-}
RESUME=${RESUME:-}
if [ -n "$SINCE" ]; then
  git rev-parse --verify -q "$SINCE^{commit}" >/dev/null || { echo "SINCE=$SINCE is not a revision" >&2; exit 1; }
fi

# changed <file> <line>: true when SINCE is unset or the line is one of those changed since it.
changed() {
  [ -z "$SINCE" ] && return 0
  git diff -U0 "$SINCE" -- "$1" | awk -v l="$2" '
    /^@@/ { split($3, a, ","); s = substr(a[1], 2) + 0; n = (a[2] == "") ? 1 : a[2] + 0; if (l >= s && l < s + n) found = 1 }
    END { exit found ? 0 : 1 }'
}
mkdir -p .mutation
# A run stopped while a mutant was applied left the file mutated: put it back first.
if [ -f .mutation/orig.path ]; then cp .mutation/orig.go "$(cat .mutation/orig.path)"; rm .mutation/orig.path; fi
go build -o .mutation/mutant ./tools/mutant
mutant=$PWD/.mutation/mutant

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  pkgs=(internal/policy internal/request internal/watermark internal/spending internal/watermark/file internal/signer)
fi

# runs <seconds> <packages...>: 0 when their tests pass within the time (the mutant lives), 1 when
# they fail or hang (a mutant that removes a lock or a wake-up often hangs), 2 when the mutated
# package does not build (the mutant is not viable).
runs() {
  local limit=$1
  shift
  go build "./$pkg" >/dev/null 2>&1 || return 2
  timeout $((limit + 60)) go test -count=1 -failfast -timeout "${limit}s" "$@" >/dev/null 2>&1
}

# timed <packages...>: runs them without a mutant and prints the time limit for a mutant's run:
# ten times what they took, at least a minute. Fails when they fail.
timed() {
  local t0 t1
  t0=$(date +%s)
  runs 3600 "$@" || return 1
  t1=$(date +%s)
  echo $((10 * (t1 - t0) > 60 ? 10 * (t1 - t0) : 60))
}

for pkg in "${pkgs[@]}"; do
  name=${pkg//\//_}
  users=$(go list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}}' ./internal/... |
    awk -v p="$module/$pkg" '$1 != p { for (i = 2; i <= NF; i++) if ($i == p) { print $1; break } }' | sort -u | tr '\n' ' ')
  echo "== $pkg (users: ${users:-none})"
  if [ -z "$RESUME" ]; then : > ".mutation/$name.log"; : > ".mutation/$name.lived"; : > ".mutation/$name.done"; fi
  touch ".mutation/$name.log" ".mutation/$name.lived" ".mutation/$name.done"
  # The tests must pass on the code as it is, or every mutant would count as killed.
  # shellcheck disable=SC2086
  if ! own_limit=$(timed "./$pkg"); then echo "$pkg: its tests fail without a mutant; fix them first" >&2; exit 1; fi
  users_limit=60
  # shellcheck disable=SC2086
  if [ -n "$users" ] && ! users_limit=$(timed $users); then echo "$pkg: its users' tests fail without a mutant; fix them first" >&2; exit 1; fi

  # try <file> <TYPE> <line> <col>: applies one mutant, runs its package's tests, then (when they
  # pass) the users', records the outcome in .done, restores the file. A mutant already in .done
  # (RESUME) is not run again.
  try() {
    local file=$1 kind=$2 line=$3 col=$4 desc outcome rc
    if grep -qxF "$kind $file:$line:$col" <(cut -d' ' -f2,3 ".mutation/$name.done"); then return; fi
    cp "$file" .mutation/orig.go
    echo "$file" > .mutation/orig.path
    if ! desc=$("$mutant" apply "$file" "$kind" "$line" "$col" 2>&1); then
      cp .mutation/orig.go "$file"; rm .mutation/orig.path; echo "skipped $desc" >> ".mutation/$name.log"
      echo "skipped $kind $file:$line:$col" >> ".mutation/$name.done"; return
    fi
    outcome=lived
    runs "$own_limit" "./$pkg" && rc=0 || rc=$?
    case $rc in 0) ;; 2) outcome=not_viable ;; *) outcome=own ;; esac
    if [ $outcome = lived ] && [ -n "$users" ]; then
      # shellcheck disable=SC2086
      runs "$users_limit" $users && rc=0 || rc=$?
      case $rc in 0) ;; 2) outcome=not_viable ;; *) outcome=users ;; esac
    fi
    cp .mutation/orig.go "$file"
    rm .mutation/orig.path
    if [ $outcome = lived ]; then
      echo "$desc | $(sed -n "${line}p" "$file" | sed 's/^[[:space:]]*//')" >> ".mutation/$name.lived"
    fi
    echo "$outcome $desc" >> ".mutation/$name.log"
    echo "$outcome $kind $file:$line:$col" >> ".mutation/$name.done"
  }

  # 1. Operators: gremlins (every mutator) lists the mutants of the package's own files (-E '/':
  # not its subpackages'), and each is run here with the time limit measured above. (Gremlins'
  # own runs take their limit from its coverage run, several minutes for a hanging mutant, and
  # cannot resume; its --diff finds no mutant in a package below the module's root.) A mutant
  # gremlins' coverage says no test reaches (NOT COVERED, which is not always so) is run too.
  mutators=(--invert-logical --invert-loopctrl --invert-assignments --invert-bitwise --invert-bwassign --remove-self-assignments)
  if [[ " $STAGES " == *" operators "* ]]; then
    "$gremlins" unleash "./$pkg" -E '/' --dry-run "${mutators[@]}" > ".mutation/$name.gremlins.txt" 2>&1 || true
    while read -r kind loc; do
      file=${loc%%:*}; rest=${loc#*:}; line=${rest%%:*}; col=${rest#*:}
      changed "$pkg/$file" "$line" && try "$pkg/$file" "$kind" "$line" "$col"
    done < <(grep -E " (RUNNABLE|NOT COVERED) " ".mutation/$name.gremlins.txt" | sed 's/NOT COVERED/NOT_COVERED/' | awk '{print $2, $4}')
  fi

  # 2. Statement removal: every guard, call and assignment of the package's files.
  if [[ " $STAGES " == *" statements "* ]]; then
    for file in "$pkg"/*.go; do
      case $file in *_test.go) continue ;; esac
      while read -r line col _; do
        changed "$file" "$line" && try "$file" STATEMENT_REMOVAL "$line" "$col"
      done < <("$mutant" list "$file")
    done
  fi

  count() { grep -c "^$1 " ".mutation/$name.done" || true; }
  own_killed=$(count own) users_killed=$(count users) lived=$(count lived) not_viable=$(count not_viable)
  total=$((own_killed + users_killed + lived))
  score=$(awk -v k=$((own_killed + users_killed)) -v t=$total 'BEGIN { printf "%.1f", t ? 100 * k / t : 100 }')
  summary="$pkg: killed $own_killed by its tests + $users_killed by its users' tests, lived $lived ($score % killed); not viable $not_viable"
  echo "$summary" | tee -a .mutation/summary.txt
  sed 's/^/  LIVED /' ".mutation/$name.lived"
done
