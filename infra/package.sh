#!/usr/bin/env bash
# Builds what deploys into .aws-sam/build, in two steps, and prints each bootstrap's size:
#   1. every function's release bootstrap in one `cargo lambda build` over the function
#      crates (the Makefile's target/lambda/<arch>/.built: one dependency graph, features
#      unified once; skipped when no file those crates are built from changed);
#   2. `sam build` (BuildMethod: makefile, in source), which asks the Makefile's
#      `build-<LogicalId>` for each function: a copy of its bootstrap, and the template
#      with every CodeUri pointing at it.
#
#   bash infra/package.sh            (make package; ARCH=arm64|x86_64, default arm64)
#
# arm64 needs the aarch64-unknown-linux-gnu Rust target. Where it is not installed and
# rustup cannot download it (these machines have no network beyond the package
# registries), the build falls back to x86_64 and says so: deploy that build with
# `sam deploy --parameter-overrides Architecture=x86_64 ...`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

arch=${ARCH:-arm64}
case "$arch" in
  arm64 | x86_64) ;;
  *) echo "ARCH must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac

# sam (aws-sam-cli) lives in .venv-lint, cargo-lambda (and zig) in .venv: install both.
bash infra/lint.sh --install-only
make --no-print-directory venv

if [ "$arch" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  if ! rustup target add aarch64-unknown-linux-gnu >/tmp/package-rustup.log 2>&1; then
    echo "==> the aarch64-unknown-linux-gnu target is not installed and rustup cannot download it" >&2
    echo "    ($(tail -n 1 /tmp/package-rustup.log)); building x86_64 instead." >&2
    echo "    Deploy this build with Architecture=x86_64, or run make package where rustup can fetch the target." >&2
    arch=x86_64
  fi
fi

export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 ARCH=$arch
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
started=$(date +%s)
make --no-print-directory "target/lambda/$arch/.built"
compiled=$(( $(date +%s) - started ))

echo "==> sam build ($arch, in source: each function's bootstrap copied from target/lambda/$arch)"
started=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
.venv-lint/bin/sam build --build-in-source --parameter-overrides "Architecture=$arch" "$@" >"$log" 2>&1 \
  || { cat "$log" >&2; exit 1; }
copied=$(( $(date +%s) - started ))

echo
printf '%-32s %10s\n' "function" "bootstrap"
total=0
count=0
for bootstrap in .aws-sam/build/*/bootstrap; do
  size=$(stat -c %s "$bootstrap")
  total=$((total + size))
  count=$((count + 1))
  awk -v n="$(basename "$(dirname "$bootstrap")")" -v s="$size" 'BEGIN { printf "%-32s %7.2f MB\n", n, s / 1e6 }'
done
functions=$(grep -c 'Type: AWS::Serverless::Function' template.yaml)
if [ "$count" -ne "$functions" ]; then
  echo "expected $functions bootstraps (one per AWS::Serverless::Function), found $count" >&2
  exit 1
fi
awk -v n="all $count" -v s="$total" 'BEGIN { printf "%-32s %7.2f MB\n", n, s / 1e6 }'
echo "built for $arch: cargo ${compiled}s, sam build ${copied}s; .aws-sam/build/template.yaml is what sam deploy uploads"
echo "$arch" >.aws-sam/build/ARCHITECTURE
