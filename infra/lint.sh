#!/usr/bin/env bash
# Offline checks of the infrastructure code: template.yaml and infra/statemachine/*.asl.yaml.
#
#   bash infra/lint.sh                 (from any directory; exits non-zero if any check fails)
#   bash infra/lint.sh --install-only  (only installs the tools)
#
# The checks: cfn-lint and `sam validate --lint` on template.yaml; then, on what
# CloudFormation deploys (the SAM-translated template, infra/translate-sam.py), cfn-lint,
# checkov (security and best practice) and parliament (every IAM policy,
# infra/check-policies.py); asl-validator on the state machine definitions. checkov
# fails on any failed check, parliament on a finding of severity MEDIUM or above. A
# check that does not apply is skipped beside its resource in template.yaml, with the
# reason: `Metadata: checkov: skip: [{id, comment}]`, `Metadata: parliament: skip:
# [{issue, comment}]` (README, "Infrastructure checks").
#
# Installs its pinned tools on first use, and again only when a pin changes:
#   .venv-lint/        cfn-lint, aws-sam-cli, parliament  infra/requirements-lint.lock
#   .venv-checkov/     checkov                            infra/requirements-checkov.lock
#   infra/node_modules asl-validator                      infra/package.json + package-lock.json
# (each lock: every package pinned with its sha256, installed with --require-hashes
# --no-deps; regenerated from requirements-*.txt and constraints-*.txt by
# infra/lock-python.py). Needs python3 (3.11) and npm for that; the checks themselves need no network and no
# AWS credentials (they run with telemetry and update checks off and the AWS config
# files hidden).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv-lint
checkov_venv=.venv-checkov
python=${PYTHON:-python3}

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Tools -------------------------------------------------------------------------------
# Each install directory holds a stamp with the hash of the lock it was installed from.
# A lock that no longer pins what its constraints pin is an error (not a silent old install).
"$python" infra/lock-python.py --check >/dev/null
install_venv() {
  local dir=$1 lock=$2 want
  if ! "$dir/bin/python" -c '' 2>/dev/null; then
    echo "==> creating $dir with $("$python" --version)"
    rm -rf "$dir"
    "$python" -m venv "$dir"
  fi
  want=$(fingerprint "$lock")
  if [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "==> installing $lock into $dir"
    rm -f "$dir/.requirements.sha256"
    "$dir/bin/python" -m pip install --quiet --require-virtualenv --require-hashes --no-deps -r "$lock"
    echo "$want" >"$dir/.requirements.sha256"
  fi
}
install_venv "$venv" infra/requirements-lint.lock
install_venv "$checkov_venv" infra/requirements-checkov.lock

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
asl_files=(infra/statemachine/*.asl.yaml)
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
    echo "no infra/statemachine/*.asl.yaml to validate" >&2
    return 1
  fi
  local args=() f
  for f in "${asl_files[@]}"; do args+=(--yaml-path "$f"); done
  infra/node_modules/.bin/asl-validator "${args[@]}"
}

# checkov lists the failed checks, then its counts. Offline: --skip-download (no platform
# configuration or guideline mapping) and no PyPI version check; a template it cannot
# parse fails instead of passing with nothing checked.
checkov_translated() {
  if ! CKV_SKIP_PACKAGE_UPDATE_CHECK=true CKV_PARSE_ERROR_FAIL=true \
    "$checkov_venv/bin/checkov" --file "$translated" --framework cloudformation \
    --skip-download --compact --quiet \
    | sed -e '/^cloudformation scan results:$/d' -e '/^$/d' -e 's/^/    /'; then
    echo "    fix the resource, or skip the check beside it in template.yaml"
    return 1
  fi
}

check "cfn-lint template.yaml" "$venv/bin/cfn-lint" template.yaml
check "sam validate --lint" "$venv/bin/sam" validate --lint --template template.yaml

# What CloudFormation deploys: the roles and permissions SAM generates, circular
# dependencies, the state machine definitions (see infra/translate-sam.py).
translated=$(mktemp "${TMPDIR:-/tmp}/translated-template.XXXXXX.json")
echo "==> SAM transform (infra/translate-sam.py)"
if "$venv/bin/python" infra/translate-sam.py template.yaml >"$translated"; then
  echo "    ok"
  check "cfn-lint on the SAM-translated template (ASL inlined)" "$venv/bin/cfn-lint" "$translated"
  check "checkov on the SAM-translated template" checkov_translated
  check "parliament on every IAM policy of the SAM-translated template" \
    "$venv/bin/python" infra/check-policies.py "$translated"
else
  failed+=("SAM transform (infra/translate-sam.py)")
fi
check "asl-validator ${asl_files[*]}" asl_validator

if [ ${#failed[@]} -gt 0 ]; then
  echo "(translated template kept at $translated)" >&2
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
rm -f "$translated"
echo "All infrastructure checks passed."
