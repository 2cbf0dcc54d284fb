#!/usr/bin/env bash
# Fetch dockerd 28 for the e2e tests, WITHOUT installing it: Debian sid's docker.io (dockerd) and
# docker-cli (the docker CLI), downloaded with a private apt (scripts/lib/private-apt.sh, suite sid, as
# scripts/fetch-containerd.sh does) and unpacked with `dpkg -x` into
#   ${DOCKER_CACHE:-<repo>/.cache/docker}/28/   (dockerd in usr/sbin/, docker in usr/bin/)
# and records the exact package version in 28/VERSION. dockerd 20.10 is Debian 12's docker.io, installed
# with apt (.ci/run); its service is never started (the tests start their own dockerd).
# Usage: scripts/fetch-docker.sh. Idempotent: an existing, working cache is left alone.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/private-apt.sh
source "$repo_root/scripts/lib/private-apt.sh"
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

apt_root=$cache/.apt
rm -rf "$apt_root/debs" # every .deb there is unpacked below
private_apt_init "$apt_root" "$suite"
daemon_version=$(suite_version docker.io "$suite")
cli_version=$(suite_version docker-cli "$suite")
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
