#!/usr/bin/env bash
# The tpmfleet.tpm collection as users get it: build the tarball, install it
# into an empty collections directory with a fresh virtual environment, and
# check it from outside the repository:
#   - the collection installs and is the only tpmfleet.tpm found;
#   - ansible-doc documents every plugin; the playbooks pass --syntax-check;
#   - ansible-test sanity on the installed collection;
#   - ansible-builder introspect lists the controller side's Python and
#     system needs (meta/execution-environment.yml);
#   - the execution environment's build context (ansible-builder create) and
#     the collection entry of its galaxy requirements install;
#   - collections/requirements.yml's git entry (the AWX project recipe)
#     installs the collection from this repository's committed HEAD;
#   - publishing: the README's contents table is the one generated from the
#     tree (tests/collection/readme_contents.py), the changelog fragments
#     lint, CHANGELOG.md is what changelogs/changelog.yaml generates, a
#     version with unreleased fragments is not a released one, and
#     galaxy-importer (the checks Galaxy and Automation Hub run on an upload)
#     passes the tarball with no error and no warning.
# The publishing tools (tests/collection/requirements-tools.txt) live in a
# virtual environment of their own (tests/collection/tools-venv.sh).
# With TPMFLEET_OUTSIDE_INVENTORY (and TPMFLEET_OUTSIDE_LIMIT) it also runs
# tpmfleet.tpm.site from outside the repository against that inventory and
# prints the PLAY RECAP (the default molecule scenario does this on a lab VM).
# Galaxy is not reachable from CI: the collection's dependencies
# (community.general, community.docker) are copied from the pinned `ansible`
# package of the repository's .venv instead of downloaded.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${TPMFLEET_COLLECTION_WORK:-$(mktemp -d -t tpmfleet-collection.XXXXXX)}
mkdir -p "$work"
# TPMFLEET_SOURCE_VENV and TPMFLEET_REQUIREMENTS: another controller's toolchain
# and pins (scripts/controller2.sh); by default the repository's .venv and requirements.txt.
venv_src=${TPMFLEET_SOURCE_VENV:-$repo/.venv}
pin() { grep -E "^$1==" "${TPMFLEET_REQUIREMENTS:-$repo/requirements.txt}"; }
step() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

step "build the collection"
rm -rf "$work/dist"
"$venv_src/bin/ansible-galaxy" collection build "$repo/collections/ansible_collections/tpmfleet/tpm" \
  --output-path "$work/dist" --force
tarball=$(ls "$work"/dist/tpmfleet-tpm-*.tar.gz)
if tar tzf "$tarball" | grep -E '(^|/)(tests|molecule|benchmarks|\.lab)/|lab_vm|mitogen'; then
  echo "check: the tarball holds lab or test files" >&2; exit 1
fi

# The publishing checks look at the tarball and the tree with tools of their
# own venv, whatever the controller: another controller's run
# (TPMFLEET_REQUIREMENTS set, e.g. make test-controller2) skips them unless
# TPMFLEET_PUBLISH_CHECKS=1, as make collection on the main controller runs them.
if [ -z "${TPMFLEET_REQUIREMENTS:-}" ] || [ "${TPMFLEET_PUBLISH_CHECKS:-}" = 1 ]; then
step "the README's contents table and the changelog are generated from the tree"
coll_src="$repo/collections/ansible_collections/tpmfleet/tpm"
"$venv_src/bin/python" "$repo/tests/collection/readme_contents.py"
tools=$(TPMFLEET_SOURCE_VENV="$venv_src" "$repo/tests/collection/tools-venv.sh")
(cd "$coll_src" && "$tools/bin/antsibull-changelog" lint)
rm -rf "$work/changelog"
cp -r "$coll_src" "$work/changelog"
(cd "$work/changelog" && PATH="$tools/bin:$PATH" "$tools/bin/antsibull-changelog" generate)
cmp -s "$coll_src/CHANGELOG.md" "$work/changelog/CHANGELOG.md" \
  || { echo "check: CHANGELOG.md is not what changelogs/changelog.yaml generates; run antsibull-changelog generate (or release) in the collection" >&2;
       diff -u "$coll_src/CHANGELOG.md" "$work/changelog/CHANGELOG.md" | head -40 >&2; exit 1; }
"$venv_src/bin/python" - "$coll_src" <<'PY'
import pathlib, sys, yaml
coll = pathlib.Path(sys.argv[1])
version = yaml.safe_load((coll / "galaxy.yml").read_text())["version"]
released = yaml.safe_load((coll / "changelogs/changelog.yaml").read_text())["releases"]
pending = sorted(p.name for p in (coll / "changelogs/fragments").glob("*.y*ml"))
if pending and version in released:
    sys.exit(f"check: galaxy.yml's version {version!r} is released already but changelogs/fragments holds "
             f"{', '.join(pending)}: bump the version in galaxy.yml (the next release's)")
if version not in released and not pending:
    sys.exit(f"check: galaxy.yml's version {version!r} has no release in changelogs/changelog.yaml and no fragment")
print(f"ok: version {version}, {'released' if version in released else f'{len(pending)} fragment(s) pending'}")
# galaxy.yml's URLs: set, https, and a documentation page of this repository that exists.
galaxy = yaml.safe_load((coll / "galaxy.yml").read_text())
for key in ("repository", "documentation", "homepage", "issues"):
    if not str(galaxy.get(key) or "").startswith("https://"):
        sys.exit(f"check: galaxy.yml's {key} must be an https URL (got {galaxy.get(key)!r})")
prefix = galaxy["repository"].rstrip("/") + "/blob/main/"
if galaxy["documentation"].startswith(prefix):
    page = coll.parents[3] / galaxy["documentation"][len(prefix):]
    if not page.is_file():
        sys.exit(f"check: galaxy.yml's documentation {galaxy['documentation']!r} names {page}, which does not exist")
print("ok: repository, documentation, homepage and issues URLs")
PY

step "galaxy-importer on the tarball: no error, no warning"
# Galaxy's defaults (galaxy_importer/config.py), written out: ansible-doc and
# ansible-lint (profile production) run; ansible-test is off (it needs a
# container engine; ansible-test sanity runs on the installed collection below).
cat > "$work/galaxy-importer.cfg" <<CFG
[galaxy-importer]
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
RUN_ANSIBLE_TEST = False
CHECK_CHANGELOG = True
CHECK_REQUIRED_TAGS = False
TMP_ROOT_DIR = $work
ANSIBLE_LOCAL_TMP = $work/importer-tmp
CFG
import_tarball() {
  (cd "$work" && GALAXY_IMPORTER_CONFIG="$work/galaxy-importer.cfg" PATH="$tools/bin:$PATH" \
    "$tools/bin/python" -m galaxy_importer.main "$tarball" > "$work/galaxy-importer.log" 2>&1) \
    || { cat "$work/galaxy-importer.log" >&2; echo "check: galaxy-importer failed" >&2; exit 1; }
}
import_tarball
# galaxy-importer gives ansible-lint a fixed 180 s (loaders/collection.py); on
# a busy machine it ran out once (measured: "ERROR: Timeout on call to
# ansible-lint" at a load average of 8 on 2 cores). One more try then, said so;
# a second timeout fails the check like any other error.
if grep -q '^ERROR: Timeout on call to ansible-lint' "$work/galaxy-importer.log"; then
  echo "galaxy-importer: ansible-lint ran out of its 180 s; once more"
  import_tarball
fi
grep -q '^Importer processing completed successfully' "$work/galaxy-importer.log" \
  || { cat "$work/galaxy-importer.log" >&2; echo "check: galaxy-importer did not complete" >&2; exit 1; }
# No warning is accepted: each one is fixed, or explained here and filtered.
if grep -E '^(WARNING|ERROR)' "$work/galaxy-importer.log"; then
  echo "check: galaxy-importer reported the warnings or errors above" >&2; exit 1
fi
echo "ok: galaxy-importer $("$tools/bin/python" -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))'): 0 errors, 0 warnings"
else
  step "publishing checks: skipped on another controller (make collection runs them; TPMFLEET_PUBLISH_CHECKS=1 here)"
fi

step "a fresh virtual environment with ansible-core and the controller's Python needs"
# TPMFLEET_COLLECTION_VENV: where it is kept, so that `make collection` and the
# default scenario's converge from outside share one (never the repository's .venv).
venv=${TPMFLEET_COLLECTION_VENV:-$work/venv}
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "$(pin ansible-core)" "$(pin cryptography)" "$(pin jsonschema)" "$(pin pyyaml)"
fi
export PATH="$venv/bin:$PATH"

step "install the tarball into an empty collections directory"
rm -rf "$work/collections"
mkdir -p "$work/collections"
cat > "$work/ansible.cfg" <<CFG
[defaults]
collections_path = $work/collections
collections_scan_sys_path = false
host_key_checking = false
interpreter_python = auto_silent
retry_files_enabled = false
gathering = explicit
[ssh_connection]
pipelining = true
CFG
export ANSIBLE_CONFIG="$work/ansible.cfg"
cd "$work"
ansible-galaxy collection install "$tarball" -p "$work/collections" --no-deps
deps_src=$("$venv_src/bin/python" -c 'import ansible_collections, os; print(list(ansible_collections.__path__)[0])')
mkdir -p "$work/collections/ansible_collections/community"
for dep in general docker; do
  cp -r "$deps_src/community/$dep" "$work/collections/ansible_collections/community/$dep"
done
listed=$(ansible-galaxy collection list tpmfleet.tpm 2>/dev/null | grep -c '^tpmfleet.tpm ')
[ "$listed" = 1 ] || { echo "check: expected exactly one tpmfleet.tpm, found $listed" >&2; exit 1; }

if [ -z "${TPMFLEET_COLLECTION_ONLY_CONVERGE:-}" ]; then
step "ansible-doc documents every plugin"
coll="$work/collections/ansible_collections/tpmfleet/tpm"
for kind in module lookup filter; do
  dir=$kind; [ "$kind" = module ] && dir=modules
  for f in "$coll/plugins/$dir"/*.py; do
    name=$(basename "$f" .py)
    if [ "$kind" = filter ]; then
      # A filter file holds several filters, each documented in <filter>.yml beside it.
      for doc in "$coll/plugins/filter"/*.yml; do
        ansible-doc -t filter "tpmfleet.tpm.$(basename "$doc" .yml)" > /dev/null
      done
      break
    fi
    ansible-doc -t "$kind" "tpmfleet.tpm.$name" > /dev/null
  done
done
ansible-doc -t role tpmfleet.tpm.tpm_quote_mode > /dev/null
echo "ok"

step "the playbooks parse from outside the repository"
printf 'tpm_hosts:\n  hosts:\n    host1:\n' > "$work/syntax-inventory.yml"
for playbook in site quote_mode report; do
  ansible-playbook -i "$work/syntax-inventory.yml" "tpmfleet.tpm.$playbook" --syntax-check
done

step "ansible-test sanity on the installed collection"
# ansible-test bootstraps pip in its test environments with a script from
# ci-files.testing.ansible.com; CI cannot reach it, so a stand-in that uses
# ensurepip (tests/collection/get_pip_offline.py) is put in its cache.
mkdir -p "$HOME/.ansible/test/cache"
for v in 24_2 24_3 25_0 25_1 25_2; do
  cp "$repo/tests/collection/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_$v.py"
done
(cd "$coll" && ansible-test sanity --python "$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
   --requirements ${TPMFLEET_SANITY_ARGS:-})

step "ansible-builder introspect finds the controller side's needs in the installed collection"
"$venv_src/bin/ansible-builder" introspect "$work/collections" > "$work/introspect.txt"
# What the controller side imports (tests/collection/controller_imports.py
# follows the action, filter and lookup plugins through the collection's own
# modules) must be listed from the collection, or be a requirement of
# ansible-core itself (PyYAML); the SSH client is the system need.
"$venv_src/bin/python" "$repo/tests/collection/controller_imports.py" "$coll" > "$work/controller-imports.txt"
core_requires=$("$venv_src/bin/python" -c 'import importlib.metadata as m, re; print(" ".join(re.split(r"[^A-Za-z0-9_.-]", r, maxsplit=1)[0].lower() for r in m.requires("ansible-core") or []))')
for need in $(cat "$work/controller-imports.txt") openssh-client; do
  if grep -qi "^- '$need\b.*# from collection tpmfleet.tpm'" "$work/introspect.txt"; then
    echo "  $need: from tpmfleet.tpm's meta/execution-environment.yml"
  elif [[ " $core_requires " == *" $need "* ]]; then
    echo "  $need: a requirement of ansible-core"
  else
    echo "check: the controller side needs $need but ansible-builder introspect does not list it from tpmfleet.tpm (meta/ee-requirements.txt, meta/ee-bindep.txt):" >&2
    cat "$work/introspect.txt" >&2; exit 1
  fi
done
echo "ok"

step "the execution environment's build context"
# The EE is on the newest supported ansible-core, the one the second
# controller tests the collection with (requirements-controller2.txt).
ee_core=$("$venv_src/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["dependencies"]["ansible_core"]["package_pip"])' "$repo/execution-environment.yml")
c2_core=$(grep -E '^ansible-core==' "$repo/requirements-controller2.txt")
[ "$ee_core" = "$c2_core" ] \
  || { echo "check: execution-environment.yml pins $ee_core, the second controller (requirements-controller2.txt) $c2_core: keep the EE on the core the tests run" >&2; exit 1; }
echo "ok: the EE's $ee_core"
rm -rf "$work/ee"
"$venv_src/bin/ansible-builder" create -f "$repo/execution-environment.yml" -c "$work/ee" > /dev/null
test -f "$work/ee/_build/tpmfleet.tpm/galaxy.yml"
(cd "$work/ee/_build" && ansible-galaxy collection install ./tpmfleet.tpm -p "$work/ee-collections" --no-deps --force > /dev/null)
test -f "$work/ee-collections/ansible_collections/tpmfleet/tpm/MANIFEST.json"
echo "ok: $(ls "$work/ee")"

step "collections/requirements.yml's git entry installs the collection (AWX project recipe)"
ansible-galaxy collection install \
  "git+file://$repo/.git#/collections/ansible_collections/tpmfleet/tpm,HEAD" -p "$work/git-collections" --no-deps --force > /dev/null
test -f "$work/git-collections/ansible_collections/tpmfleet/tpm/MANIFEST.json"
echo "ok"

fi

if [ -n "${TPMFLEET_OUTSIDE_INVENTORY:-}" ]; then
  step "tpmfleet.tpm.site from outside the repository"
  printf -- '---\n- name: Prepare the TPM hosts with the installed collection\n  ansible.builtin.import_playbook: tpmfleet.tpm.site\n' > "$work/site.yml"
  ansible-playbook -i "$TPMFLEET_OUTSIDE_INVENTORY" --limit "${TPMFLEET_OUTSIDE_LIMIT:-all}" "$work/site.yml"
fi
echo "check: done in $(( $(date +%s) - start )) s"
