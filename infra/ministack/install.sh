#!/usr/bin/env bash
# Installs MiniStack into .venv-ministack/ at the repo root from infra/ministack/requirements.lock
# (every package pinned with its sha256: --require-hashes --no-deps; regenerated from
# requirements.txt and constraints.txt by infra/lock-python.py), on first use and again
# only when the lock changes (the venv holds a stamp with the hash of the lock).
#
#   bash infra/ministack/install.sh       (make ministack-venv; make up/test call it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

venv=.venv-ministack
python=${PYTHON:-python3}
lock=infra/ministack/requirements.lock
"$python" infra/lock-python.py --check >/dev/null
want=$(sha256sum <"$lock" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "==> creating $venv with $("$python" --version)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
echo "==> installing $lock into $venv"
rm -f "$venv/.requirements.sha256"
"$venv/bin/python" -m pip install --quiet --require-virtualenv --require-hashes --no-deps -r "$lock"
echo "$want" >"$venv/.requirements.sha256"
