#!/usr/bin/env bash
# The long fuzz run (issue #14, "Prove it"): every property-based test (the `fuzz` test
# modules next to each parser: Socket Mode frames, ingress, thread and command parsing, the
# command guard, the change-list parser, the devcontainer/JSONC reader) with enough cases
# that the total reaches at least TOTAL (default 1,000,000). CI runs the same properties
# with proptest's default of 256 cases each, as part of `cargo test`.
#
# Prints the cases and the wall time of each property, then the totals; exits non-zero if
# any property fails (its shrunk input is printed, and proptest saves it under
# proptest-regressions/ so the next `cargo test` runs it first).
#
#   scripts/fuzz.sh              # >= 1,000,000 cases in all
#   scripts/fuzz.sh 50000        # a quick pass
#   FUZZ_PROFILE=release scripts/fuzz.sh   # an optimised build: slower to build, faster to run
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-1000000}
profile=${FUZZ_PROFILE:-dev}
release=()
[[ $profile == release ]] && release=(--release)

# The unit-test binary holding the properties.
bin=$(cargo test "${release[@]}" --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[[ -x $bin ]] || { echo "fuzz: could not build the test binary" >&2; exit 2; }

mapfile -t props < <("$bin" --list 2>/dev/null | sed -n 's/^\(.*::fuzz::[^:]*\): test$/\1/p' | sort)
(( ${#props[@]} > 0 )) || { echo "fuzz: no properties found" >&2; exit 2; }
per=$(( (total + ${#props[@]} - 1) / ${#props[@]} ))

echo "fuzz: ${#props[@]} properties x ${per} cases (${profile} build)"
failed=0
cases=0
start=$(date +%s.%N)
for p in "${props[@]}"; do
    t0=$(date +%s.%N)
    if PROPTEST_CASES=$per nice "$bin" --exact "$p" --test-threads=1 >"/tmp/fuzz.$$.log" 2>&1; then
        status=ok
        cases=$(( cases + per ))
    else
        status=FAILED
        failed=$(( failed + 1 ))
        grep -E 'minimal failing input|Test failed|panicked|overflow' "/tmp/fuzz.$$.log" | head -5 >&2 || true
    fi
    printf '%-90s %9d cases %8.1f s  %s\n' "$p" "$per" "$(echo "$(date +%s.%N) - $t0" | bc)" "$status"
done
rm -f "/tmp/fuzz.$$.log"
printf 'fuzz: %d cases passed in %.1f s; %d of %d properties failed\n' \
    "$cases" "$(echo "$(date +%s.%N) - $start" | bc)" "$failed" "${#props[@]}"
(( failed == 0 ))
