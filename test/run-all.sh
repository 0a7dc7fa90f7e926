#!/usr/bin/env bash
# Runs the lit suite and the unit tests, then prints one closing line,
# "check: N passed, M failed[, U unsupported here]", and fails if anything
# failed.
set -uo pipefail
build=${1:-build}
jobs=${2:-2}

lit_log=$(mktemp)
/usr/lib/llvm-22/bin/lit -sv -j"$jobs" "$build/test" 2>&1 | tee "$lit_log"
lit_rc=${PIPESTATUS[0]}
unit_log=$(mktemp)
"$build/bin/decc-unittests" --gtest_brief=1 2>&1 | tee "$unit_log"
unit_rc=${PIPESTATUS[0]}

count() { grep -aEo "$1" "$2" | grep -Eo '[0-9]+' | head -1; }
lit_pass=$(count '^ *Passed *: *[0-9]+' "$lit_log"); lit_pass=${lit_pass:-0}
lit_fail=$(count '^ *Failed *: *[0-9]+' "$lit_log"); lit_fail=${lit_fail:-0}
lit_unsupported=$(count '^ *Unsupported *: *[0-9]+' "$lit_log")
unit_total=$(count '[0-9]+ tests? from [0-9]+ test suites? ran' "$unit_log"); unit_total=${unit_total:-0}
unit_fail=$(count 'FAILED  \] [0-9]+ tests?' "$unit_log"); unit_fail=${unit_fail:-0}
rm -f "$lit_log" "$unit_log"

passed=$((lit_pass + unit_total - unit_fail))
failed=$((lit_fail + unit_fail))
if [ "$lit_rc" -ne 0 ] || [ "$unit_rc" -ne 0 ]; then
  [ "$failed" -eq 0 ] && failed=1
fi
echo
# A test whose REQUIRES this host lacks (a CPU feature) is named, not hidden.
echo "check: $passed passed, $failed failed${lit_unsupported:+, $lit_unsupported unsupported here (lit -v lists them)}"
[ "$failed" -eq 0 ]
