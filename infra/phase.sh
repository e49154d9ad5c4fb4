#!/usr/bin/env bash
# Times the phases of a long command (make test) so a slow one is seen at once in a log.
#
#   bash infra/phase.sh run NAME COMMAND...   runs COMMAND, prints "==> NAME: 123 s" and
#                                             records the line in target/phases.tsv; exits
#                                             with COMMAND's status
#   bash infra/phase.sh table                 prints every recorded phase, its time and
#                                             outcome, and the wall-clock time from the
#                                             first start to the last end (phases may
#                                             overlap: make test runs its two stacks at
#                                             once)
#   bash infra/phase.sh reset                 forgets the recorded phases
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
record=target/phases.tsv

case "${1:-}" in
  run)
    [ $# -ge 3 ] || { echo "usage: phase.sh run NAME COMMAND..." >&2; exit 2; }
    name=$2
    shift 2
    echo "==> phase: $name"
    started=$(date +%s)
    "$@"
    status=$?
    seconds=$(( $(date +%s) - started ))
    mkdir -p "$(dirname "$record")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$seconds" "$status" "$started" "$(date +%s)" >>"$record"
    if [ "$status" -eq 0 ]; then
      echo "==> phase done: $name: ${seconds} s"
    else
      echo "==> phase FAILED: $name: ${seconds} s (exit $status)"
    fi
    exit "$status"
    ;;
  table)
    [ -f "$record" ] || { echo "no phases recorded ($record)"; exit 0; }
    awk -F'\t' '
      BEGIN { printf "%-62s %8s  %s\n", "phase", "seconds", "outcome" }
      { printf "%-62s %8d  %s\n", $1, $2, ($3 == 0 ? "ok" : "FAILED (exit " $3 ")")
        if (first == "" || $4 < first) first = $4
        if ($5 > last) last = $5 }
      END { total = last - first
            printf "%-62s %8d  (%d min %02d s)\n", "wall clock, first start to last end", total, total / 60, total % 60 }
    ' "$record"
    ;;
  reset)
    rm -f "$record"
    ;;
  *)
    echo "usage: phase.sh run NAME COMMAND... | table | reset" >&2
    exit 2
    ;;
esac
