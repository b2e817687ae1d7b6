#!/usr/bin/env bash
# tpmfleet: install what the lab and the tests need, idempotently.
#  - Debian/Ubuntu packages (QEMU, swtpm, debootstrap, tpm2-tools, the TSS
#    headers tpm2-pytss builds against, Chromium for the report's browser test,
#    redis-server for its fact-cache test, bubblewrap for the ansible-runner
#    process isolation of make test-awx-slices, python3-gpg and libefivar1
#    for keylime), installed only when missing;
#  - keylime, the attestation tests' independent verifier, in
#    .cache/keylime-venv (Debian's python3, requirements-keylime.txt);
#  - a Python virtual environment in .venv with the pinned toolchain from
#    requirements.txt, rebuilt only when that file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config make git
  qemu-system-x86 qemu-utils swtpm swtpm-tools
  debootstrap e2fsprogs openssh-client
  tpm2-tools libtss2-dev
  chromium chromium-driver
  redis-server
  bubblewrap
  python3-gpg libefivar1
)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python toolchain into .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date"
fi

# keylime (requirements-keylime.txt) in an interpreter of its own: Debian's
# python3 with its system packages, for python3-gpg, which PyPI lacks.
kstamp=.cache/keylime-venv/.requirements.sha256
kwant=$(sha256sum requirements-keylime.txt | cut -d' ' -f1)
if [ ! -x .cache/keylime-venv/bin/python ] || [ "$(cat "$kstamp" 2>/dev/null)" != "$kwant" ]; then
  echo "setup: installing keylime into .cache/keylime-venv"
  rm -rf .cache/keylime-venv
  /usr/bin/python3 -m venv --system-site-packages .cache/keylime-venv
  .cache/keylime-venv/bin/python -m pip install -q -r requirements-keylime.txt
  .cache/keylime-venv/bin/python -c 'import gpg, keylime.tpm.tpm_util'
  echo "$kwant" > "$kstamp"
else
  echo "setup: .cache/keylime-venv is up to date"
fi

# The compose v2 CLI for the unit tests that check rendered compose files with
# `docker-compose config` (no Docker engine needed): Debian trixie's
# docker-compose package (it depends only on libc6 >= 2.34), pinned by
# checksum and unpacked into .venv/bin, never installed system-wide.
COMPOSE_DEB=docker-compose_2.26.1-4_amd64.deb
COMPOSE_SHA256=47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea
if [ "$(uname -m)" = x86_64 ] && [ ! -x .venv/bin/docker-compose ]; then
  echo "setup: installing the compose v2 CLI into .venv/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  .venv/bin/python - "$tmp/$COMPOSE_DEB" <<PY
import sys, urllib.request
urllib.request.urlretrieve("http://deb.debian.org/debian/pool/main/d/docker-compose/$COMPOSE_DEB", sys.argv[1])
PY
  echo "$COMPOSE_SHA256  $tmp/$COMPOSE_DEB" | sha256sum -c --quiet -
  dpkg-deb -x "$tmp/$COMPOSE_DEB" "$tmp/root"
  install -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" .venv/bin/docker-compose
else
  echo "setup: compose v2 CLI present (or not needed on $(uname -m))"
fi
