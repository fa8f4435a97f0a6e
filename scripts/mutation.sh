#!/usr/bin/env bash
# Mutation testing of the safety code: gremlins (pinned) changes one operator at a time in a
# package (a condition negated, a boundary moved, an arithmetic operator swapped, …) and runs the
# tests of that package AND of the packages that use it; a mutant the tests still pass ("LIVED")
# is a rule no test holds. Not part of the test suite: it takes from minutes (policy) to hours
# (watermark, whose users include the stores that start real servers).
#
# Usage: ./scripts/mutation.sh [package ...]   (default: the safety packages below)
# Results: .mutation/<package>.json (gremlins' report) and .mutation/<package>.txt, and a summary
# line per package; docs/testing.md records the scores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1

go install github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
gremlins="$(go env GOPATH)/bin/gremlins"
module=$(go list -m)

# The packages whose rules keep a baker safe, and (by default) the packages under internal/ that
# import each: their tests run against every mutant too.
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  pkgs=(internal/policy internal/request internal/watermark internal/watermark/file internal/signer)
fi

# gremlins runs `go test <mutated package>`; this `go` in front of the real one adds the users'
# packages to that command.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
realgo=$(command -v go)
cat > "$shim/go" <<EOF
#!/usr/bin/env bash
if [ "\${1:-}" = test ] && [ -n "\${MUTATION_ALSO:-}" ]; then
  exec "$realgo" "\$@" \$MUTATION_ALSO
fi
exec "$realgo" "\$@"
EOF
chmod +x "$shim/go"

mkdir -p .mutation
for pkg in "${pkgs[@]}"; do
  users=$(go list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}}' ./internal/... |
    awk -v p="$module/$pkg" '{ for (i = 2; i <= NF; i++) if ($i == p) { print $1; break } }' | sort -u | tr '\n' ' ')
  name=${pkg//\//_}
  echo "== $pkg (tests also of: ${users:-none})"
  MUTATION_ALSO="$users" PATH="$shim:$PATH" "$gremlins" unleash "./$pkg" -E "^$pkg/[^/]+/" --coverpkg "$module/$pkg" \
    --workers 1 --timeout-coefficient 10 \
    -o ".mutation/$name.json" > ".mutation/$name.txt" 2>&1 || true
  grep -E "^(Killed|Test efficacy|Mutator coverage)" ".mutation/$name.txt" || tail -5 ".mutation/$name.txt"
  grep "LIVED" ".mutation/$name.txt" || true
done
