#!/usr/bin/env bash
# Fetch other containerd versions for the e2e tests, WITHOUT installing them:
#   1.7 -> Debian trixie's containerd, 2.1 -> Debian sid's containerd.
# Uses apt-get with a private sources list (same mirror URI as this machine's own Debian source, other
# suite) and private state/cache dirs, downloads the .deb and unpacks it with `dpkg -x` into
#   ${CONTAINERD_CACHE:-<repo>/.cache/containerd}/<series>/   (binaries in usr/bin/)
# and records the exact package version in <series>/VERSION.
# Usage: scripts/fetch-containerd.sh [1.7|2.1|all]   (default: all). Idempotent: an existing, working
# cache is left alone.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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

# The Debian mirror URI this machine already uses (deb822 .sources or one-line .list).
debian_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" | grep -E '/debian/?$' | head -n1 || true)
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" |
      grep -E '/debian/?$' | head -n1 || true)
    [[ -n $uri ]] && { echo "${uri%/}"; return; }
  done
  echo http://deb.debian.org/debian
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

uri=$(debian_uri)
apt_root=$cache/.apt
mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/etc/preferences.d" "$apt_root/debs"
: >"$apt_root/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
  for s in "${pending[@]}"; do
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' "$uri" "$(suite_for "$s")" "$keyring"
  done
} >"$apt_root/etc/private.sources"

apt_opts=(
  -o "Dir::State=$apt_root"
  -o "Dir::State::Lists=$apt_root/lists"
  -o "Dir::State::status=$apt_root/status"
  -o "Dir::Cache=$apt_root"
  -o "Dir::Cache::archives=$apt_root/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Dir::Etc::SourceList=$apt_root/etc/private.sources"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=$apt_root/etc/preferences.d"
  -o "APT::Architecture=amd64"
  -o "APT::Architectures=amd64"
  -o "Acquire::Languages=none"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)

log "updating private package lists from $uri (${pending[*]})"
apt-get "${apt_opts[@]}" -qq update >&2

for s in "${pending[@]}"; do
  suite=$(suite_for "$s")
  # apt-cache madison prints "containerd | <version> | <uri> <suite>/main amd64 Packages".
  version=$(apt-cache "${apt_opts[@]}" madison containerd |
    awk -F'|' -v suite="$suite" '$3 ~ (" " suite "/") { gsub(/ /, "", $2); print $2; exit }')
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
