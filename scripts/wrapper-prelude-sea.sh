# The single file (npm run package): this script, then the shim's executable, Node with the shim inside
# (@PAYLOAD_SIZE@ bytes from byte @PAYLOAD_AT@ on). It is unpacked once per build under $cache, on disk so that
# every daemon shares its pages through the page cache, and run from there. No Node is needed on the host.
cache=${CONTAINERD_SHIM_TS_CACHE:-/var/lib/containerd-shim-ts}
sea="$cache/@BUILD@/containerd-shim-ts-v2"
if [ ! -x "$sea" ]; then
  self=$(readlink -f "$0") || exit 1
  tmp="$sea.$$"
  if ! (umask 077 && mkdir -p "$cache/@BUILD@" && tail -c +@PAYLOAD_AT@ "$self" >"$tmp" &&
    [ "$(wc -c <"$tmp")" -eq @PAYLOAD_SIZE@ ] && chmod 0755 "$tmp" && mv -f "$tmp" "$sea"); then
    rm -f "$tmp"
    echo "containerd-shim-ts-v2: cannot unpack the shim into $cache/@BUILD@" >&2
    exit 1
  fi
  # Other builds' copies: the three newest stay. A daemon runs on from a removed copy (and its spare exits);
  # a build whose copy was removed unpacks it again when it runs.
  ls -1dt "$cache"/*/ 2>/dev/null | tail -n +4 | while IFS= read -r d; do rm -rf "$d"; done
fi
# What the script form passes on node's command line, for the Node inside.
NODE_OPTIONS=--v8-pool-size=1
export NODE_OPTIONS
