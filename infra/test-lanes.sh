#!/usr/bin/env bash
# make test's moto phase: every test of the workspace, in two lanes at once, inside the
# stack `local-stack exec` started (its endpoints in the environment).
#
#   lane "own stacks"  the system-test suites that start stacks of their own (OWN_STACK
#                      below) and never touch the shared one: one after another
#   lane "shared"      everything else: every crate's unit and integration tests, then the
#                      other system-test suites, against the shared stack
#
# One lane alone leaves a core idle most of the time: the suites wait on workflows, timers
# and the emulator, not on the compiler. Each lane's cargo output goes to its own log
# (target/test-output.log, target/test-output-own-stacks.log; make test counts both);
# the shared lane is shown as it runs, the other when it ends. Exits non-zero when any
# test failed in either lane.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The suites with stacks of their own (OwnStack::start, or local-stack up/exec itself).
OWN_STACK=(chaos chaos_storm local_stack)
SHARED_LOG=target/test-output.log
OWN_LOG=target/test-output-own-stacks.log
CARGO=${CARGO:-cargo}

# Every [[test]] of tests/Cargo.toml (autotests are off: each suite is declared there).
mapfile -t suites < <(awk '/^\[\[test\]\]/ { in_test = 1; next }
  /^\[/ { in_test = 0 }
  in_test && /^name *=/ { gsub(/.*= *"|".*/, ""); print }' tests/Cargo.toml)
[ "${#suites[@]}" -gt 0 ] || { echo "test-lanes: no [[test]] in tests/Cargo.toml" >&2; exit 2; }

own_args=()
shared_args=()
for suite in "${suites[@]}"; do
  if [[ " ${OWN_STACK[*]} " == *" $suite "* ]]; then
    own_args+=(--test "$suite")
  else
    shared_args+=(--test "$suite")
  fi
done
# A suite named in OWN_STACK but gone from tests/Cargo.toml would silently not run.
for own in "${OWN_STACK[@]}"; do
  [[ " ${suites[*]} " == *" $own "* ]] || {
    echo "test-lanes: $own is in OWN_STACK but not a [[test]] of tests/Cargo.toml" >&2
    exit 2
  }
done

mkdir -p target
echo "==> lane own stacks: ${OWN_STACK[*]} (log: $OWN_LOG, shown when it ends)"
$CARGO test -p system-tests --locked --no-fail-fast "${own_args[@]}" >"$OWN_LOG" 2>&1 &
own_pid=$!
# Stops the other lane when this script is interrupted (it is our child: its PID).
trap 'kill "$own_pid" 2>/dev/null' EXIT

echo "==> lane shared stack: every crate, then ${#shared_args[@]} system-test suites"
shared_status=0
{
  $CARGO test --workspace --exclude system-tests --locked --no-fail-fast || shared_status=$?
  $CARGO test -p system-tests --locked --no-fail-fast --lib "${shared_args[@]}" || shared_status=$?
  $CARGO test -p system-tests --locked --no-fail-fast --doc || shared_status=$?
  exit "$shared_status"
} 2>&1 | tee "$SHARED_LOG"
shared_status=${PIPESTATUS[0]}

wait "$own_pid"
own_status=$?
trap - EXIT
echo "==> lane own stacks ended (exit $own_status):"
cat "$OWN_LOG"
echo "==> lanes: shared stack exit $shared_status, own stacks exit $own_status"
[ "$shared_status" -eq 0 ] && [ "$own_status" -eq 0 ]
