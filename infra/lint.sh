#!/usr/bin/env bash
# Offline checks of the infrastructure code: template.yaml and infra/statemachine/*.asl.json.
#
#   bash infra/lint.sh                 (from any directory; exits non-zero if any check fails)
#   bash infra/lint.sh --install-only  (only installs the tools)
#
# Installs its pinned tools on first use, and again only when a pin changes:
#   .venv-lint/        cfn-lint, aws-sam-cli   infra/requirements-lint.txt (+ constraints)
#   infra/node_modules asl-validator           infra/package.json + package-lock.json
# Needs python3 (3.11) and npm for that; the checks themselves need no network and no
# AWS credentials (they run with telemetry off and the AWS config files hidden).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv-lint
python=${PYTHON:-python3}

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Tools -------------------------------------------------------------------------------
# Each install directory holds a stamp with the hash of the files it was installed from.
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "==> creating $venv with $("$python" --version)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
want=$(fingerprint infra/requirements-lint.txt infra/constraints-lint.txt)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "==> installing infra/requirements-lint.txt into $venv"
  rm -f "$venv/.requirements.sha256"
  "$venv/bin/python" -m pip install --quiet --require-virtualenv -r infra/requirements-lint.txt
  echo "$want" >"$venv/.requirements.sha256"
fi

want=$(fingerprint infra/package.json infra/package-lock.json)
if [ "$(cat infra/node_modules/.package-lock.sha256 2>/dev/null)" != "$want" ]; then
  echo "==> npm ci --prefix infra"
  npm ci --prefix infra --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >infra/node_modules/.package-lock.sha256
fi

# `bash infra/lint.sh --install-only`: the tools, no checks (infra/package.sh needs sam).
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

# --- Checks ------------------------------------------------------------------------------
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_DEFAULT_PROFILE

shopt -s nullglob
asl_files=(infra/statemachine/*.asl.json)
shopt -u nullglob

failed=()
check() {
  local name=$1
  shift
  echo "==> $name"
  if "$@"; then echo "    ok"; else failed+=("$name"); fi
}

asl_validator() {
  if [ ${#asl_files[@]} -eq 0 ]; then
    echo "no infra/statemachine/*.asl.json to validate" >&2
    return 1
  fi
  local args=() f
  for f in "${asl_files[@]}"; do args+=(--json-path "$f"); done
  infra/node_modules/.bin/asl-validator "${args[@]}"
}

# cfn-lint on the output of the SAM transform: sees the generated roles and permissions,
# circular dependencies, and the state machine definitions (see infra/translate-sam.py).
lint_translated() {
  local out
  out=$(mktemp "${TMPDIR:-/tmp}/translated-template.XXXXXX.json")
  if "$venv/bin/python" infra/translate-sam.py template.yaml >"$out" \
    && "$venv/bin/cfn-lint" "$out"; then
    rm -f "$out"
  else
    echo "    (translated template kept at $out)" >&2
    return 1
  fi
}

check "cfn-lint template.yaml" "$venv/bin/cfn-lint" template.yaml
check "sam validate --lint" "$venv/bin/sam" validate --lint --template template.yaml
check "cfn-lint on the SAM-translated template (ASL inlined)" lint_translated
check "asl-validator ${asl_files[*]}" asl_validator

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "All infrastructure checks passed."
