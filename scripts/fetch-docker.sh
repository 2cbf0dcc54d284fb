#!/usr/bin/env bash
# Fetch dockerd 28 for the e2e tests, WITHOUT installing it: Debian sid's docker.io (dockerd) and
# docker-cli (the docker CLI), downloaded with a private apt (same mirror as this machine's own Debian
# source, suite sid, private state/cache dirs, as scripts/fetch-containerd.sh does) and unpacked with
# `dpkg -x` into
#   ${DOCKER_CACHE:-<repo>/.cache/docker}/28/   (dockerd in usr/sbin/, docker in usr/bin/)
# and records the exact package version in 28/VERSION. dockerd 20.10 is Debian 12's docker.io, installed
# with apt (.ci/run); its service is never started (the tests start their own dockerd).
# Usage: scripts/fetch-docker.sh. Idempotent: an existing, working cache is left alone.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DOCKER_CACHE:-$repo_root/.cache/docker}
series=28
suite=sid
dest=$cache/$series

log() { echo "fetch-docker: $*" >&2; }

cache_ok() {
  [[ -x $dest/usr/sbin/dockerd && -x $dest/usr/bin/docker && -f $dest/VERSION ]] &&
    "$dest/usr/sbin/dockerd" --version >/dev/null 2>&1 && "$dest/usr/bin/docker" --version >/dev/null 2>&1
}

if cache_ok; then
  log "$series: cached ($(cat "$dest/VERSION")) in $dest"
  exit 0
fi

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

uri=$(debian_uri)
apt_root=$cache/.apt
mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/etc/preferences.d" "$apt_root/debs"
: >"$apt_root/status"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
  "$uri" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg >"$apt_root/etc/private.sources"

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

log "updating private package lists from $uri ($suite)"
apt-get "${apt_opts[@]}" -qq update >&2

# apt-cache madison prints "<pkg> | <version> | <uri> <suite>/main amd64 Packages".
version_of() {
  apt-cache "${apt_opts[@]}" madison "$1" |
    awk -F'|' -v suite="$suite" '$3 ~ (" " suite "/") { gsub(/ /, "", $2); print $2; exit }'
}
daemon_version=$(version_of docker.io)
cli_version=$(version_of docker-cli)
if [[ -z $daemon_version || -z $cli_version ]]; then
  log "no docker.io / docker-cli in $suite (docker.io: '${daemon_version}', docker-cli: '${cli_version}')"
  exit 1
fi
upstream=${daemon_version#*:}
upstream=${upstream%%[~+-]*}
if [[ $upstream != "$series".* ]]; then
  log "$suite carries docker.io $daemon_version, not a $series release"
  exit 1
fi

log "downloading docker.io=$daemon_version docker-cli=$cli_version from $suite"
(cd "$apt_root/debs" && apt-get "${apt_opts[@]}" -qq download "docker.io=$daemon_version" "docker-cli=$cli_version" >&2)
tmp=$cache/.$series.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
for deb in "$apt_root"/debs/*.deb; do dpkg -x "$deb" "$tmp"; done
echo "$daemon_version" >"$tmp/VERSION"
rm -rf "${dest:?}"
mv "$tmp" "$dest"
if ! out=$("$dest/usr/sbin/dockerd" --version 2>&1); then
  log "extracted dockerd does not run here: $out"
  exit 1
fi
log "$series: $out"
# The unpacked tree is the cache; lists and .debs are fetched afresh when needed again.
rm -rf "$apt_root"
