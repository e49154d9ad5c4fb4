#!/usr/bin/env bash
# Installs MiniStack (pinned, infra/ministack/requirements.txt + constraints.txt) into
# .venv-ministack/ at the repo root, on first use and again only when a pin changes (the
# venv holds a stamp with the hash of the files it was installed from).
#
#   bash infra/ministack/install.sh       (make ministack-venv; make up/test call it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

venv=.venv-ministack
python=${PYTHON:-python3}
want=$(cat infra/ministack/requirements.txt infra/ministack/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "==> creating $venv with $("$python" --version)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
echo "==> installing infra/ministack/requirements.txt into $venv"
rm -f "$venv/.requirements.sha256"
(cd infra/ministack && "../../$venv/bin/python" -m pip install --quiet --require-virtualenv -r requirements.txt)
echo "$want" >"$venv/.requirements.sha256"
