#!/usr/bin/env bash
# Checks that building one package's tests after the workspace build compiles no
# third-party crate again: every member depends on infra/workspace-hack (cargo hakari),
# which turns on, for each dependency, the features the whole workspace uses. Without
# it `cargo test -p order-core` rebuilt 89 crates (78 s) after `make build`.
#
#   bash infra/check-unified-features.sh      (part of make lint; exits 1 on a rebuild)
#
# When it fails: a dependency or a feature changed. Regenerate the hack with cargo-hakari
# (pinned: `cargo install cargo-hakari --version 0.9.39 --locked`), then
# `cargo hakari generate && cargo hakari manage-deps`, and commit what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo=${CARGO:-cargo}

# Every third-party artifact (its file name carries the hash of its features) a build used.
artifacts() {
  python3 -c '
import json, sys
used = set()
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and not message.get("package_id", "").startswith("path+"):
        used.update("%s %s" % (message["target"]["name"], f.rsplit("/", 1)[-1]) for f in message["filenames"])
print("\n".join(sorted(used)))
'
}
workspace=$("$cargo" build --workspace --all-targets --locked --message-format=json 2>/dev/null | artifacts)
failed=0
for package in order-core partner-simulator invoke-router; do
  alone=$("$cargo" test -p "$package" --no-run --locked --message-format=json 2>/dev/null | artifacts)
  other=$(comm -13 <(echo "$workspace") <(echo "$alone") | cut -d' ' -f1 | sort -u | tr '\n' ' ')
  if [ -n "$other" ]; then
    echo "cargo test -p $package builds third-party crates with other features than the workspace build: $other" >&2
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "the workspace-hack no longer unifies the workspace's features: see the top of $0" >&2
  exit 1
fi
echo "one package's build reuses the workspace build's dependencies (order-core, partner-simulator, invoke-router)"
