#!/usr/bin/env bash
# cargo-deny on the workspace's dependency tree, offline: licences, bans and sources as
# deny.toml says (README, "Dependencies"). Not advisories: their database is on GitHub,
# which these machines cannot reach.
#
#   bash infra/deny.sh                 (part of make lint; exits non-zero if a check fails)
#   bash infra/deny.sh --install-only  (only installs cargo-deny; make lint-tools)
#
# Installs cargo-deny, pinned, into target/tools/ on first use and again only when the pin
# changes (`cargo install --locked`: its own Cargo.lock; needs crates.io once). The first
# install compiles it: about 5 minutes on two cores (README, "Dependencies").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=0.20.2
root=target/tools
deny=$root/bin/cargo-deny

if [ "$("$deny" --version 2>/dev/null)" != "cargo-deny $version" ]; then
  echo "==> installing cargo-deny $version into $root (compiles it, a few minutes)"
  cargo install cargo-deny --locked --version "$version" --no-default-features --root "$root"
fi

if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

echo "==> cargo deny --offline check licenses bans sources"
"$deny" --offline --locked check --hide-inclusion-graph licenses bans sources
