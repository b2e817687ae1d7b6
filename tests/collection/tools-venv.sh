#!/usr/bin/env bash
# The publishing and AWX tools (tests/collection/requirements-tools.txt) in a
# virtual environment of their own: made or remade when that file changes,
# then its path printed. TPMFLEET_TOOLS_VENV names it; by default
# .cache/collection-tools-py<X.Y> of the checkout, one per Python version
# (the second controller runs check.sh in the same checkout). The
# collection's dependencies (community.general, community.docker) are copied
# into its site-packages from the controller's `ansible` package
# (TPMFLEET_SOURCE_VENV, default .venv): galaxy-importer runs ansible-lint
# with a collections path of its own, so they are found only there, as the
# `ansible` package would put them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv_src=${TPMFLEET_SOURCE_VENV:-$repo/.venv}
req="$repo/tests/collection/requirements-tools.txt"
tools=${TPMFLEET_TOOLS_VENV:-$repo/.cache/collection-tools-py$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$tools/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$tools/.requirements.sha256"
fi
deps_src=$("$venv_src/bin/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')
site=$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for dep in general docker; do
  if [ ! -d "$site/ansible_collections/community/$dep" ]; then
    mkdir -p "$site/ansible_collections/community"
    cp -r "$deps_src/community/$dep" "$site/ansible_collections/community/$dep"
  fi
done
echo "$tools"
