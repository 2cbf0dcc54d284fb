#!/usr/bin/env bash
# Fetch other containerd versions for the e2e tests, WITHOUT installing them:
#   1.7 -> Debian trixie's containerd, 2.1 -> Debian sid's containerd.
# Uses a private apt (scripts/lib/private-apt.sh: same mirror URI as this machine's own Debian source, other
# suite, private state/cache dirs), downloads the .deb and unpacks it with `dpkg -x` into
#   ${CONTAINERD_CACHE:-<repo>/.cache/containerd}/<series>/   (binaries in usr/bin/)
# and records the exact package version in <series>/VERSION.
# Usage: scripts/fetch-containerd.sh [1.7|2.1|all]   (default: all). Idempotent: an existing, working
# cache is left alone.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/private-apt.sh
source "$repo_root/scripts/lib/private-apt.sh"
cache=${CONTAINERD_CACHE:-$repo_root/.cache/containerd}
want=${1:-all}

# series -> suite and the expected upstream version (informational; we take what the suite carries).
suite_for() { case $1 in 1.7) echo trixie ;; 2.1) echo sid ;; *) return 1 ;; esac; }
expected_for() { case $1 in 1.7) echo 1.7.24 ;; 2.1) echo 2.1.9 ;; esac; }

case $want in
  all) series_list=(1.7 2.1) ;;
  1.7 | 2.1) series_list=("$want") ;;
  *) echo "usage: $0 [1.7|2.1|all]" >&2; exit 2 ;;
esac

log() { echo "fetch-containerd: $*" >&2; }

# A cache entry is good when the three binaries exist and containerd answers --version.
cache_ok() {
  local dir=$cache/$1/usr/bin
  [[ -x $dir/containerd && -x $dir/ctr && -x $dir/containerd-shim-runc-v2 && -f $cache/$1/VERSION ]] &&
    "$dir/containerd" --version >/dev/null 2>&1
}

pending=()
for s in "${series_list[@]}"; do
  if cache_ok "$s"; then
    log "$s: cached ($(cat "$cache/$s/VERSION")) in $cache/$s"
  else
    pending+=("$s")
  fi
done
[[ ${#pending[@]} -eq 0 ]] && exit 0

apt_root=$cache/.apt
suites=()
for s in "${pending[@]}"; do suites+=("$(suite_for "$s")"); done
private_apt_init "$apt_root" "${suites[@]}"

for s in "${pending[@]}"; do
  suite=$(suite_for "$s")
  version=$(suite_version containerd "$suite")
  if [[ -z $version ]]; then
    log "$s: no containerd package in $suite"
    apt-cache "${apt_opts[@]}" policy containerd >&2 || true
    exit 1
  fi
  upstream=${version#*:}
  upstream=${upstream%%[~+-]*}
  if [[ $upstream != "$(expected_for "$s")" ]]; then
    log "$s: note: $suite carries containerd $version (expected $(expected_for "$s")); using it"
  fi
  if [[ $upstream != "$s".* ]]; then
    log "$s: $suite carries containerd $version, not a $s release"
    exit 1
  fi
  log "$s: downloading containerd=$version from $suite"
  (cd "$apt_root/debs" && apt-get "${apt_opts[@]}" -qq download "containerd=$version" >&2)
  deb=$(ls -t "$apt_root"/debs/containerd_"${version//:/%3a}"_*.deb | head -n1)
  tmp=$cache/.$s.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  dpkg -x "$deb" "$tmp"
  echo "$version" >"$tmp/VERSION"
  rm -rf "${cache:?}/$s"
  mv "$tmp" "$cache/$s"
  if ! out=$("$cache/$s/usr/bin/containerd" --version 2>&1); then
    log "$s: extracted containerd does not run here: $out"
    exit 1
  fi
  log "$s: $out"
done
# The unpacked trees are the cache; lists and .debs are fetched afresh when needed again.
rm -rf "$apt_root"
