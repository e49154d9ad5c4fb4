#!/usr/bin/env bash
# Makes sure the toolchain rust-toolchain.toml pins is installed, and prints `ok`.
#
# rustup installs it where it can download. Where it cannot (these machines reach no
# download server of rustup's) and the machine's `stable` toolchain is that very version,
# the stable toolchain is linked under the pinned name: the same compiler, by name.
# Otherwise it fails, saying which version is wanted and which is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if [ -z "$want" ]; then
  echo "rust-toolchain.toml names no channel" >&2
  exit 1
fi
if ! command -v rustup >/dev/null 2>&1; then
  # No rustup: the compiler on the PATH must be the pinned one.
  have=$(rustc --version | cut -d' ' -f2)
  [ "$have" = "$want" ] || { echo "rustc $have is on the PATH; rust-toolchain.toml wants $want" >&2; exit 1; }
  echo ok
  exit 0
fi
if rustup toolchain list | grep -q "^$want"; then
  echo ok
  exit 0
fi
stable=$(RUSTUP_TOOLCHAIN=stable rustc --version 2>/dev/null | cut -d' ' -f2 || true)
if [ "$stable" = "$want" ]; then
  # rustup will not `toolchain link` a name of its own channels: the link is made by hand,
  # as a second name of the stable toolchain's directory.
  host=$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')
  toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
  ln -sfn "$toolchains/stable-$host" "$toolchains/$want-$host"
  echo "linked the stable toolchain ($stable) as $want" >&2
  echo ok
  exit 0
fi
echo "installing Rust $want (rust-toolchain.toml; the machine's stable is ${stable:-none})" >&2
rustup toolchain install "$want" --profile minimal --component rustfmt --component clippy >&2
echo ok
