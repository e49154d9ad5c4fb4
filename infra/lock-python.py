#!/usr/bin/env python3
"""Writes the hash-checked lock files the Python venvs are installed from.

    python3 infra/lock-python.py            regenerate every lock (needs PyPI)
    python3 infra/lock-python.py --check    offline: each lock pins exactly what its
                                            constraints pin (make lint runs this)
    python3 infra/lock-python.py --check-venvs
                                            regenerate, and first compare each existing
                                            venv's `pip freeze --all` with its constraints

Each venv is installed with `pip install --require-hashes --no-deps -r <lock>`: the lock
lists every package the venv holds (the constraints file is the `pip freeze` of a fresh
install of the requirements), each as `name==version` with the sha256 of every file PyPI
has for that version (wheels for every platform and the sdist), so pip can pick whichever
fits the machine and refuses anything else. pip and setuptools come with the venv and are
not in the lock.

A pin bump: change requirements-*.txt, regenerate constraints-*.txt as that file says,
then run this script. Standard library only.
"""

import json
import pathlib
import re
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent

# venv, requirements, constraints, lock (paths from the repo root).
VENVS = [
    (".venv", "infra/requirements-stack.txt", "infra/constraints-stack.txt",
     "infra/requirements-stack.lock"),
    (".venv-lint", "infra/requirements-lint.txt", "infra/constraints-lint.txt",
     "infra/requirements-lint.lock"),
    (".venv-checkov", "infra/requirements-checkov.txt", "infra/constraints-checkov.txt",
     "infra/requirements-checkov.lock"),
    (".venv-openapi", "infra/requirements-openapi.txt", "infra/constraints-openapi.txt",
     "infra/requirements-openapi.lock"),
    (".venv-ministack", "infra/ministack/requirements.txt", "infra/ministack/constraints.txt",
     "infra/ministack/requirements.lock"),
]

# Not in a lock: the venv brings them (python3 -m venv).
BOOTSTRAP = {"pip", "setuptools"}

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)\s*(?:#.*)?$")


def canonical(name):
    """PEP 503 name: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path, allow_includes=False):
    """{canonical name: (name as written, version)} of a requirements-style file.

    Every line must be a comment, `-c file` (if allow_includes) or `name==version`:
    anything looser would not be a pin."""
    result = {}
    for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if allow_includes and line.startswith("-c "):
            continue
        match = PIN.match(line)
        if not match:
            sys.exit(f"{path}:{number}: not an exact pin (name==version): {line!r}")
        name, _extras, version = match.groups()
        if canonical(name) in result:
            sys.exit(f"{path}:{number}: {name} is pinned twice")
        result[canonical(name)] = (name, version)
    return result


def wanted(requirements, constraints):
    """What the lock must hold: the constraints, checked to agree with the requirements."""
    required = pins(requirements, allow_includes=True)
    pinned = pins(constraints)
    for key, (name, version) in required.items():
        if key not in pinned:
            sys.exit(f"{requirements}: {name} is not in {constraints}; regenerate the constraints")
        if pinned[key][1] != version:
            sys.exit(f"{requirements}: {name}=={version} but {constraints} pins "
                     f"{pinned[key][1]}; regenerate the constraints")
    for key in BOOTSTRAP & pinned.keys():
        sys.exit(f"{constraints}: {pinned[key][0]} comes with the venv; leave it out")
    return pinned


def get_json(url):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def sha256s(name, version):
    """The sha256 of every file PyPI has for name==version, sorted."""
    try:
        files = get_json(f"https://pypi.org/pypi/{name}/{version}/json")["urls"]
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise SystemExit(f"PyPI: {name}=={version}: {error}")
        # Some mirrors and proxies serve only the project's page: its releases have them too.
        try:
            files = get_json(f"https://pypi.org/pypi/{name}/json")["releases"].get(version)
        except urllib.error.URLError as error:
            raise SystemExit(f"PyPI: {name}: {error}")
    except urllib.error.URLError as error:
        raise SystemExit(f"PyPI: {name}=={version}: {error} (the lock needs https://pypi.org)")
    if not files:
        sys.exit(f"PyPI has no files for {name}=={version}")
    return sorted({f["digests"]["sha256"] for f in files})


def lock_text(requirements, constraints, pinned):
    lines = [
        "# Generated by infra/lock-python.py; do not edit: change the pins and regenerate.",
        f"# Every package of {constraints} (what {requirements} resolves to),",
        "# with the sha256 of every file PyPI has for that version, so pip picks what fits the",
        "# platform: pip install --require-hashes --no-deps -r <this file>",
    ]
    for key in sorted(pinned):
        name, version = pinned[key]
        hashes = sha256s(name, version)
        print(f"    {name}=={version}: {len(hashes)} file(s)", file=sys.stderr)
        lines.append(f"{name}=={version} \\")
        lines.extend(f"    --hash=sha256:{h} \\" for h in hashes[:-1])
        lines.append(f"    --hash=sha256:{hashes[-1]}")
    return "\n".join(lines) + "\n"


def locked(lock):
    """{canonical name: version} of a lock file, and how many hashes each has."""
    text = (ROOT / lock).read_text().replace("\\\n", " ")
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *hashes = line.split()
        name, version = requirement.split("==")
        if not hashes or not all(h.startswith("--hash=sha256:") for h in hashes):
            sys.exit(f"{lock}: {requirement} has no sha256 hash")
        result[canonical(name)] = version
    return result


def check():
    stale = []
    for _venv, requirements, constraints, lock in VENVS:
        pinned = {key: version for key, (_name, version) in wanted(requirements, constraints).items()}
        if not (ROOT / lock).exists():
            stale.append(f"{lock}: missing")
        elif locked(lock) != pinned:
            stale.append(f"{lock}: does not pin what {constraints} pins")
    if stale:
        sys.exit("\n".join(stale) + "\nregenerate with: python3 infra/lock-python.py")
    print(f"{len(VENVS)} Python lock files agree with their constraints")


def check_venv(venv, constraints, pinned):
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        print(f"    {venv}: not installed, not compared", file=sys.stderr)
        return
    freeze = subprocess.run([python, "-m", "pip", "freeze", "--all"], check=True,
                            capture_output=True, text=True).stdout
    have = {}
    for line in freeze.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            if canonical(name) not in BOOTSTRAP:
                have[canonical(name)] = version
    want = {key: version for key, (_name, version) in pinned.items()}
    if have != want:
        extra = sorted(f"{k}=={v}" for k, v in have.items() if want.get(k) != v)
        missing = sorted(f"{k}=={v}" for k, v in want.items() if have.get(k) != v)
        sys.exit(f"{venv} holds {extra} where {constraints} pins {missing}")


def main(argv):
    if argv == ["--check"]:
        return check()
    if argv not in ([], ["--check-venvs"]):
        sys.exit(__doc__)
    for venv, requirements, constraints, lock in VENVS:
        pinned = wanted(requirements, constraints)
        if argv == ["--check-venvs"]:
            check_venv(venv, constraints, pinned)
        print(f"==> {lock} ({len(pinned)} packages)", file=sys.stderr)
        (ROOT / lock).write_text(lock_text(requirements, constraints, pinned))


if __name__ == "__main__":
    main(sys.argv[1:])
