#!/usr/bin/env bash
# tpmfleet's second controller: Debian 13 (trixie), its Python 3.13 and the
# ansible-core releases after the main toolchain's (requirements.txt on
# Debian 12's Python 3.11), in a root filesystem made with debootstrap: one
# venv per core, the newest (requirements-controller2.txt) built with it and
# 2.20 (requirements-controller2-2.20.txt: the pins that differ) added on its
# first use. docs/controllers.md
# describes it.
#
#   scripts/controller2.sh build        build it (once per set of inputs)
#   scripts/controller2.sh run [--core CORE] CMD...
#                                        build if needed, then run CMD in it
#                                        with CORE's venv (2.21, the default,
#                                        or 2.20; or CONTROLLER2_CORE), in the
#                                        current directory of the checkout
#                                        (bind-mounted at its path)
#   scripts/controller2.sh path         print the cached root filesystem
#   scripts/controller2.sh cores        print the cores it has
#   scripts/controller2.sh pins CORE    print CORE's complete pin list
#   scripts/controller2.sh clean        remove every cached build
#
# Inside, CORE's venv is /opt/venv-CORE (first on PATH) and its complete pin
# list /opt/requirements-CORE.txt.
#
# Needs root (debootstrap, chroot, mount) and util-linux's unshare.
# The build is cached under .cache/controller2/<key>/, the key a hash of its
# inputs (the build recipe in this script, requirements-controller2*.txt, the
# suite, the mirror, the package list, the architecture); a build goes to
# <key>.build/ and is renamed into place only when complete, so an interrupted
# one is removed and started again, never used. Older keys are removed when a
# new one is done. The build's logs and what it installed (Debian packages,
# pip freeze, Python version, build seconds) are kept beside rootfs/.
#
# Every mount (/proc, /sys, /dev, /dev/pts, the checkout; debootstrap's own)
# is made in a private mount namespace (unshare --mount): the host never
# sees it and the kernel drops it when the command ends, however it ends; a
# trap unmounts it in order on any exit as well. Nothing is written to the
# host outside the cache directory.
#
# Environment: CONTROLLER2_CORE (the core `run` uses without --core),
# CONTROLLER2_MIRROR (Debian mirror), CONTROLLER2_CHROMIUM=1
# (also install chromium and chromium-driver for the browser tests: a larger
# build), CONTROLLER2_CACHE (cache directory). TPMFLEET_*, PYTEST_ADDOPTS and
# proxy variables pass through into `run`; nothing else of the caller's
# environment does.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
self="$repo/scripts/controller2.sh"
requirements="$repo/requirements-controller2.txt"
# Each core's pins: the newest's file, and for an older core a file of the
# pins that differ from it (the rest are the newest's, composed at build time).
CORES=(2.21 2.20)
declare -A CORE_PINS=([2.21]="$requirements" [2.20]="$repo/requirements-controller2-2.20.txt")
suite=trixie
mirror=${CONTROLLER2_MIRROR:-http://deb.debian.org/debian}
cache=${CONTROLLER2_CACHE:-$repo/.cache/controller2}
# Inside the root filesystem: each core's venv (/opt/venv-CORE) and its pins.
venv_of() { echo "/opt/venv-$1"; }
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config libtss2-dev
  swtpm swtpm-tools tpm2-tools git openssh-client ca-certificates
  docker-compose qemu-utils
)
if [ -n "${CONTROLLER2_CHROMIUM:-}" ]; then
  APT_PACKAGES+=(chromium chromium-driver)
fi

die() { echo "controller2: $*" >&2; exit 1; }
say() { echo "controller2: $*" >&2; }

# The build's inputs: its recipe (the functions that make the root
# filesystem, not those that run commands in it), the pins, the suite, the
# mirror, the packages and the architecture.
key() {
  {
    declare -f build build_inside build_core debootstrap_root compose_pins venv_of
    local core
    for core in "${CORES[@]}"; do
      printf '%s ' "$core"
      sha256sum "${CORE_PINS[$core]}" | cut -d' ' -f1
    done
    printf '%s\n' "$suite" "$mirror" "$(uname -m)" "${APT_PACKAGES[@]}"
  } | sha256sum | cut -c1-16
}

# The host's mount table has nothing under $1 (the private namespaces keep it so).
no_mounts_under() {
  if findmnt -rn -o TARGET | grep -qF -- "$1/"; then
    die "something is mounted under $1 in the host's mount namespace (findmnt): unmount it"
  fi
}

# Remove a tree, never across a mount.
remove_tree() {
  local dir=$1
  [ -e "$dir" ] || return 0
  no_mounts_under "$dir"
  rm -rf --one-file-system -- "$dir"
}

# Mount what a command in the root filesystem needs, in the current (private)
# mount namespace; undo it in reverse order on any exit.
__mounted=()
unmount_all() {
  local i
  for ((i = ${#__mounted[@]} - 1; i >= 0; i--)); do
    umount -R -- "${__mounted[$i]}" 2>/dev/null || umount -R -l -- "${__mounted[$i]}" || true
  done
  __mounted=()
}
mount_into() {
  local root=$1 common
  trap unmount_all EXIT
  trap 'exit 130' INT TERM HUP
  mount -t proc proc "$root/proc"
  __mounted+=("$root/proc")
  mount --rbind /sys "$root/sys"
  __mounted+=("$root/sys")
  mount --rbind /dev "$root/dev"
  __mounted+=("$root/dev")
  # /dev/pts comes with /dev's recursive bind; checked, not assumed.
  mountpoint -q "$root/dev/pts" || die "/dev/pts is not mounted in $root"
  mkdir -p "$root$repo"
  mount --bind "$repo" "$root$repo"
  __mounted+=("$root$repo")
  # A git worktree keeps its repository elsewhere: bind that too, at its path.
  common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  if [ -n "$common" ] && [ -d "$common" ] && [[ "$common/" != "$repo/"* ]]; then
    mkdir -p "$root$common"
    mount --bind "$common" "$root$common"
    __mounted+=("$root$common")
  fi
}

# Run argv in the root filesystem with a clean environment.
in_root() {
  local root=$1 dir=$2
  shift 2
  local -a envs=(
    "PATH=$(venv_of "${CONTROLLER2_CORE:-${CORES[0]}}")/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    HOME=/root LANG=C.UTF-8 "TERM=${TERM:-dumb}"
    "ANSIBLE_CONFIG=$repo/ansible.cfg" PIP_DISABLE_PIP_VERSION_CHECK=1
    "PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-180}"
  )
  local name
  while IFS= read -r name; do
    envs+=("$name=${!name}")
  done < <(compgen -e | grep -E '^(TPMFLEET_|PYTEST_ADDOPTS$|(http|https|no)_proxy$|(HTTP|HTTPS|NO)_PROXY$)' || true)
  # keylime's interpreter is the main controller's (.cache/keylime-venv, Debian 12's python3): none in here,
  # so its cross-check tests are turned off visibly (they run on the main controller).
  envs+=("TPMFLEET_KEYLIME_PYTHON=")
  chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$dir" "$@"
}

# The inner half of a build or a run, in its own mount namespace.
inner() {
  local what=$1 root=$2
  shift 2
  mount_into "$root"
  # The host's resolver, so that names resolve as on the host.
  cp --remove-destination /etc/resolv.conf "$root/etc/resolv.conf"
  case $what in
    build) build_inside "$root" ;;
    core) build_core "$root" "$1" ;;
    run) in_root "$root" "$@" ;;
  esac
}

build_inside() {
  local root=$1
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  in_root "$root" / apt-get update -q
  in_root "$root" / env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
  in_root "$root" / apt-get clean
  # The host's CA bundle (a site proxy's CA included): pip reaches PyPI only with it.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # The newest core's venv; an older core's is added to this root filesystem
  # on its first use (run --core), so make test, which tests the newest, never
  # waits for it.
  build_core "$root" "${CORES[0]}"
  # What was installed, for the record (Debian packages come from the suite
  # as it is on the day of the build; the Python packages are pinned).
  in_root "$root" / dpkg-query -W -f='${Package} ${Version}\n' > "$root/../debian-packages.txt"
  in_root "$root" / python3 --version > "$root/../python-version.txt"
}

# build_core ROOT CORE: CORE's venv in the root filesystem. An older core
# reuses the wheels pip built and downloaded for the newest (its cache in the
# root filesystem: tpm2-pytss is built from source once).
build_core() {
  local root=$1 core=$2 v
  v=$(venv_of "$core")
  compose_pins "$core" > "$root/opt/requirements-$core.txt"
  in_root "$root" / python3 -m venv "$v"
  in_root "$root" / "$v/bin/python" -m pip install -q --upgrade pip
  in_root "$root" / "$v/bin/python" -m pip install -q -r "/opt/requirements-$core.txt"
  in_root "$root" / "$v/bin/python" -m pip freeze --all > "$root/../pip-freeze-$core.txt"
}

# ensure_core CORE: CORE's venv exists in the built root filesystem; an older
# core's is added on first use, under the cache's lock, and marked ready only
# when complete (an interrupted one is made again).
ensure_core() {
  local core=$1 dir
  dir="$cache/$(key)"
  [ "$core" = "${CORES[0]}" ] || [ -f "$dir/core-$core.ready" ] && return 0
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -f "$dir/core-$core.ready" ]; then
    say "adding the ansible-core $core venv to $dir"
    unshare --mount --propagation private -- "$self" __inner core "$dir/rootfs" "$core" > "$dir/core-$core.log" 2>&1 \
      || { tail -n 30 "$dir/core-$core.log" >&2; die "the $core venv failed (log: $dir/core-$core.log)"; }
    no_mounts_under "$dir"
    touch "$dir/core-$core.ready"
  fi
  exec 9>&-
}

# compose_pins CORE: CORE's complete pin list. The newest core's file as it
# is; an older core's file replaces the newest's pins of the packages it names
# and keeps the rest.
compose_pins() {
  local base=${CORE_PINS[${CORES[0]}]} own=${CORE_PINS[$1]}
  if [ "$1" = "${CORES[0]}" ]; then
    cat "$base"
    return
  fi
  awk -F'==' '
    FNR == NR { if ($0 ~ /^[A-Za-z0-9]/) { own[tolower($1)] = 1; lines[++n] = $0 }; next }
    /^[A-Za-z0-9]/ && (tolower($1) in own) { next }
    /^[A-Za-z0-9]/ { print }
    END { for (i = 1; i <= n; i++) print lines[i] }
  ' "$own" "$base"
}

debootstrap_root() {
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$1/rootfs" "$mirror" > "$1/debootstrap.log" 2>&1
}

build() {
  local k dir tmp start
  k=$(key)
  dir="$cache/$k"
  [ -f "$dir/ready" ] && return 0
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  [ -f "$dir/ready" ] && { exec 9>&-; return 0; }
  start=$(date +%s)
  tmp="$dir.build"
  say "building $dir (trixie, $(printf '%s ' "${APT_PACKAGES[@]}"))"
  remove_tree "$tmp"
  mkdir -p "$tmp"
  # debootstrap mounts /proc and /sys in the target itself: in a private
  # mount namespace too, so that an interrupted one leaves nothing mounted.
  unshare --mount --propagation private -- "$self" __debootstrap "$tmp" \
    || { tail -n 20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log: $tmp/debootstrap.log)"; }
  unshare --mount --propagation private -- "$self" __inner build "$tmp/rootfs" > "$tmp/build.log" 2>&1 \
    || { tail -n 30 "$tmp/build.log" >&2; die "the build failed (log: $tmp/build.log)"; }
  no_mounts_under "$tmp"
  echo "$(( $(date +%s) - start ))" > "$tmp/build-seconds.txt"
  touch "$tmp/ready"
  mv -T "$tmp" "$dir"
  local old
  for old in "$cache"/*; do
    [ "$old" = "$dir" ] || [ ! -d "$old" ] || remove_tree "$old"
  done
  exec 9>&-
  say "built in $(cat "$dir/build-seconds.txt") s: $(cat "$dir/python-version.txt"), $(cat "$dir"/pip-freeze-*.txt | grep -E '^ansible-core==' | tr '\n' ' ')"
}

[ "${1:-}" = __inner ] && { shift; inner "$@"; exit; }
[ "${1:-}" = __debootstrap ] && { debootstrap_root "$2"; exit; }

# check_core CORE: CORE is one this controller has, or a clear error.
check_core() {
  [ -n "$1" ] && [ -n "${CORE_PINS[$1]+set}" ] \
    || die "the core $(printf '%s' "$1" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))') (--core or CONTROLLER2_CORE) is not one this controller has: use one of ${CORES[*]} (2.19 is the main toolchain's, .venv)"
}

# What needs neither root nor a build.
case ${1:-} in
  cores) printf '%s\n' "${CORES[@]}"; exit 0 ;;
  pins)
    [ $# -eq 2 ] || die "usage: $0 pins CORE"
    check_core "$2"
    compose_pins "$2"
    exit 0
    ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mount need it)"
for tool in debootstrap unshare chroot flock findmnt; do
  command -v "$tool" > /dev/null || die "$tool is missing (apt-get install debootstrap util-linux)"
done

case ${1:-} in
  build) build ;;
  path) echo "$cache/$(key)/rootfs" ;;
  clean)
    for old in "$cache"/*; do remove_tree "$old"; done
    ;;
  run)
    shift
    core=${CONTROLLER2_CORE:-${CORES[0]}}
    if [ "${1:-}" = --core ]; then
      [ $# -ge 2 ] || die "usage: $0 run [--core CORE] CMD..."
      core=$2
      shift 2
    fi
    check_core "$core"
    export CONTROLLER2_CORE=$core
    [ $# -gt 0 ] || die "usage: $0 run [--core CORE] CMD..."
    build
    ensure_core "$core"
    case $PWD/ in
      "$repo"/*) dir=$PWD ;;
      *) dir=$repo ;;
    esac
    rc=0
    unshare --mount --propagation private -- "$self" __inner run "$cache/$(key)/rootfs" "$dir" "$@" || rc=$?
    no_mounts_under "$cache"
    exit "$rc"
    ;;
  *) die "usage: $0 build | run [--core CORE] CMD... | path | cores | pins CORE | clean" ;;
esac
