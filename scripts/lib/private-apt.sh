# Sourced by scripts/fetch-containerd.sh and scripts/fetch-docker.sh: an apt of their own (private lists,
# status and cache under a dir they choose, their own sources list with other Debian suites, the same mirror
# as this machine's Debian source) to download .debs that are then unpacked with `dpkg -x`, never installed.
# Provides: debian_uri; private_apt_init <root> <suite>...; the array apt_opts (for apt-get / apt-cache);
# suite_version <package> <suite> (the version <suite> carries, empty if none).

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

# Sets up <root> (lists, status, cache, sources for the suites) and apt_opts pointing there.
private_apt_init() {
  local root=$1 uri s
  shift
  uri=$(debian_uri)
  mkdir -p "$root/lists/partial" "$root/archives/partial" "$root/etc/preferences.d" "$root/debs"
  : >"$root/status"
  for s in "$@"; do
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' "$uri" "$s" /usr/share/keyrings/debian-archive-keyring.gpg
  done >"$root/etc/private.sources"
  apt_opts=(
    -o "Dir::State=$root"
    -o "Dir::State::Lists=$root/lists"
    -o "Dir::State::status=$root/status"
    -o "Dir::Cache=$root"
    -o "Dir::Cache::archives=$root/archives"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "Dir::Etc::SourceList=$root/etc/private.sources"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=$root/etc/preferences.d"
    -o "APT::Architecture=amd64"
    -o "APT::Architectures=amd64"
    -o "Acquire::Languages=none"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  echo "private apt: updating package lists from $uri ($*)" >&2
  apt-get "${apt_opts[@]}" -qq update >&2
}

# apt-cache madison prints "<package> | <version> | <uri> <suite>/main amd64 Packages".
suite_version() {
  apt-cache "${apt_opts[@]}" madison "$1" |
    awk -F'|' -v suite="$2" '$3 ~ (" " suite "/") { gsub(/ /, "", $2); print $2; exit }'
}
