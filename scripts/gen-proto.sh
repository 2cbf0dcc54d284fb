#!/usr/bin/env bash
# Generates protocol/gen/** (TypeScript, ts-proto) from the .proto files Debian ships, and protocol/SOURCES.md.
# Re-runnable and deterministic: the output depends only on the installed package versions.
#
#   npm run gen            (= bash scripts/gen-proto.sh)
#
# Steps: check packages -> copy the protos minus gogo/fieldpath options (scripts/proto/strip-gogo.mjs) ->
# prove the copies are wire-identical to the originals (scripts/proto/check-wire.mjs) -> protoc + ts-proto ->
# replace protocol/gen atomically -> write protocol/SOURCES.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GOSRC=/usr/share/gocode/src
GOGO_INCLUDE=$GOSRC/github.com/gogo/protobuf
WKT_INCLUDE=/usr/include
PLUGIN=$ROOT/node_modules/.bin/protoc-gen-ts_proto
OUT=$ROOT/protocol/gen

# debian package | path under /usr/share/gocode/src | upstream repository path | generated path (no .proto)
CD=github.com/containerd/containerd
CG=github.com/containerd/cgroups
PROTOS=(
  "golang-github-containerd-containerd-dev|$CD/runtime/v2/task/shim.proto|containerd/runtime/v2/task/shim"
  "golang-github-containerd-containerd-dev|$CD/api/types/mount.proto|containerd/api/types/mount"
  "golang-github-containerd-containerd-dev|$CD/api/types/task/task.proto|containerd/api/types/task/task"
  "golang-github-containerd-containerd-dev|$CD/api/events/task.proto|containerd/api/events/task"
  "golang-github-containerd-containerd-dev|$CD/api/services/ttrpc/events/v1/events.proto|containerd/api/services/ttrpc/events/v1/events"
  "golang-github-containerd-containerd-dev|$CD/api/types/metrics.proto|containerd/api/types/metrics"
  "golang-github-containerd-containerd-dev|$CD/api/types/descriptor.proto|containerd/api/types/descriptor"
  "golang-github-containerd-containerd-dev|$CD/api/services/tasks/v1/tasks.proto|containerd/api/services/tasks/v1/tasks"
  "golang-github-containerd-containerd-dev|$CD/runtime/v2/runc/options/oci.proto|containerd/runtime/v2/runc/options/oci"
  "golang-github-containerd-containerd-dev|$CD/runtime/linux/runctypes/runc.proto|containerd/runtime/linux/runctypes/runc"
  "golang-github-containerd-cgroups-dev|$CG/stats/v1/metrics.proto|cgroups/stats/v1/metrics"
  "golang-github-containerd-cgroups-dev|$CG/v2/stats/metrics.proto|cgroups/v2/stats/metrics"
)
# Well-known types, pulled in through imports; listed for the package check and SOURCES.md.
WKT_PROTOS=(google/protobuf/any.proto google/protobuf/empty.proto google/protobuf/timestamp.proto)
EXTRA_PROTO=extra/introspection.proto # hand-written, under scripts/proto/

die() { echo "gen-proto: $*" >&2; exit 1; }

# --- 1. prerequisites ----------------------------------------------------------------------------------------
pkg_version() { dpkg-query -W -f='${Status}|${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed|//p'; }
missing=()
for pkg in golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev golang-github-gogo-protobuf-dev \
  libprotobuf-dev protobuf-compiler; do
  [[ -n "$(pkg_version "$pkg")" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) || die "missing Debian packages: ${missing[*]}
  install them with: apt-get install ${missing[*]}"
command -v protoc >/dev/null || die "protoc not found (apt-get install protobuf-compiler)"
[[ -x "$PLUGIN" ]] || die "ts-proto plugin not found at $PLUGIN (run npm install)"
for entry in "${PROTOS[@]}"; do
  IFS='|' read -r _ src _ <<<"$entry"
  [[ -f "$GOSRC/$src" ]] || die "expected $GOSRC/$src (from the Debian package) but it is missing"
done
for wkt in "${WKT_PROTOS[@]}"; do [[ -f "$WKT_INCLUDE/$wkt" ]] || die "missing $WKT_INCLUDE/$wkt (libprotobuf-dev)"; done
[[ -f "$GOGO_INCLUDE/gogoproto/gogo.proto" ]] || die "missing gogoproto/gogo.proto (golang-github-gogo-protobuf-dev)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- 2. gogo-free copies -------------------------------------------------------------------------------------
specs=()
stripped=()
originals=()
for entry in "${PROTOS[@]}"; do
  IFS='|' read -r _ src dest <<<"$entry"
  specs+=("$GOSRC:$src=$dest.proto")
  stripped+=("$dest.proto")
  originals+=("$src")
done
specs+=("$ROOT/scripts/proto:$EXTRA_PROTO=$EXTRA_PROTO")
node "$ROOT/scripts/proto/strip-gogo.mjs" "$TMP/src" "${specs[@]}"

# --- 3. wire check: originals (gogo.proto first on the path, see node-platform-notes §7) vs copies ------------
protoc --include_imports -o "$TMP/original.pb" -I "$GOGO_INCLUDE" -I "$GOSRC" -I "$WKT_INCLUDE" "${originals[@]}" \
  2> >(grep -v 'warning: Import .* is unused' >&2)
protoc --include_imports -o "$TMP/stripped.pb" -I "$TMP/src" -I "$WKT_INCLUDE" "${stripped[@]}"
(cd "$ROOT" && node scripts/proto/check-wire.mjs "$TMP/original.pb" "$TMP/stripped.pb")

# --- 4. TypeScript ---------------------------------------------------------------------------------------------
# forceLong=number: int64 timestamp seconds (-62135596800) and pids fit a double.
# forceLong=bigint for the cgroup metrics only: counters and limits are uint64 and reach 2^64-1 ("max").
COMMON_OPTS=esModuleInterop=true,importSuffix=.js,env=node,useDate=false,outputJsonMethods=false,outputPartialMethods=true
COMMON_OPTS+=,outputServices=generic-definitions,useOptionals=none
gen() { # <forceLong> <out dir> <proto>...
  local long=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  protoc --plugin=protoc-gen-ts_proto="$PLUGIN" --ts_proto_out="$dir" --ts_proto_opt="$COMMON_OPTS,forceLong=$long" \
    -I "$TMP/src" -I "$WKT_INCLUDE" "$@"
}
number_protos=()
bigint_protos=()
for p in "${stripped[@]}" "$EXTRA_PROTO"; do
  if [[ $p == cgroups/* ]]; then bigint_protos+=("$p"); else number_protos+=("$p"); fi
done
gen number "$TMP/out" "${number_protos[@]}"
gen bigint "$TMP/out-bigint" "${bigint_protos[@]}"
# The metrics protos import nothing shared, so the two runs must not overlap.
(cd "$TMP/out-bigint" && find . -type f) | while read -r f; do
  [[ ! -e "$TMP/out/$f" ]] || die "both generator runs produced $f"
done
cp -r "$TMP/out-bigint/." "$TMP/out/"

# Point readers of the generated files at their real source and at this script.
find "$TMP/out" -name '*.ts' -print0 | sort -z | while IFS= read -r -d '' f; do
  rel=${f#"$TMP/out/"}
  case $rel in
    google/*) origin="libprotobuf-dev: $WKT_INCLUDE/${rel%.ts}.proto" ;;
    extra/*) origin="HAND-WRITTEN proto: scripts/proto/${rel%.ts}.proto (not shipped by Debian)" ;;
    containerd/*) origin="golang-github-containerd-containerd-dev: $GOSRC/$CD/${rel#containerd/}" ; origin=${origin%.ts}.proto ;;
    cgroups/*) origin="golang-github-containerd-cgroups-dev: $GOSRC/$CG/${rel#cgroups/}" ; origin=${origin%.ts}.proto ;;
    *) die "unexpected generated file $rel" ;;
  esac
  { printf '// Generated by scripts/gen-proto.sh (npm run gen); do not edit. Origin: %s\n' "$origin"; cat "$f"; } >"$f.new"
  mv "$f.new" "$f"
done

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -r "$TMP/out" "$OUT"

# --- 5. SOURCES.md ---------------------------------------------------------------------------------------------
{
  cat <<'HEAD'
# Sources of the generated protocol code

Generated by `scripts/gen-proto.sh` (`npm run gen`); this file is rewritten on every run. Do not edit `gen/` by hand.

- Code generator: ts-proto (`protoc-gen-ts_proto`), runtime `@bufbuild/protobuf/wire`; see `messages.ts` for why.
- The `.proto` files are the ones Debian ships, compiled from a temporary copy with the gogoproto and containerd
  `fieldpath` imports and options removed (`scripts/proto/strip-gogo.mjs`), and with import paths shortened
  (`github.com/containerd/containerd/` -> `containerd/`, `github.com/containerd/cgroups/` -> `cgroups/`). Those
  options only steer Go code generation (custom names, `stdtime`, non-nullable fields); every run checks that
  packages, messages, field names, numbers, labels and types are identical to the originals compiled with
  `gogo.proto` on the include path (`scripts/proto/check-wire.mjs`). Stripping avoids emitting a `gogo.ts` stub
  and the 129 KB `google/protobuf/descriptor.ts` that keeping `gogo.proto` drags in.
- 64-bit integers are JS `number` (safe: timestamps, pids) except in the cgroup metrics, which use `bigint`
  (uint64 counters and limits up to 2^64-1).

| Generated file (`protocol/gen/`) | Proto package | Upstream path | Debian package (version) |
| --- | --- | --- | --- |
HEAD
  row() { # <generated> <proto file> <upstream> <package>
    local pkgname
    pkgname=$(sed -n 's/^package \([^;]*\);.*/\1/p' "$2" | head -1)
    printf '| `%s` | `%s` | %s | %s |\n' "$1" "$pkgname" "$3" "$4"
  }
  for entry in "${PROTOS[@]}"; do
    IFS='|' read -r pkg src dest <<<"$entry"
    repo=$(cut -d/ -f2,3 <<<"$src") # e.g. containerd/cgroups
    version=$(pkg_version "$pkg")
    tag=v${version%%[~+-]*} # Debian 1.6.20~ds1-1+deb12u3 -> upstream tag v1.6.20
    upstream="$repo \`${src#github.com/$repo/}\` @ $tag"
    row "$dest.ts" "$GOSRC/$src" "$upstream" "$pkg ($version)"
  done
  for wkt in "${WKT_PROTOS[@]}"; do
    row "${wkt%.proto}.ts" "$WKT_INCLUDE/$wkt" "protocolbuffers/protobuf \`src/$wkt\`" "libprotobuf-dev ($(pkg_version libprotobuf-dev))"
  done
  row "${EXTRA_PROTO%.proto}.ts" "$ROOT/scripts/proto/$EXTRA_PROTO" \
    "hand-written \`scripts/proto/$EXTRA_PROTO\`, after containerd 2.x \`api/types/introspection.proto\`" "— (not in Debian 12)"
  printf '\nTools: protoc %s (protobuf-compiler %s), ts-proto %s, gogo.proto from golang-github-gogo-protobuf-dev (%s) for the wire check only.\n' \
    "$(protoc --version | sed 's/^libprotoc //')" "$(pkg_version protobuf-compiler)" \
    "$(node -p "require('$ROOT/node_modules/ts-proto/package.json').version")" "$(pkg_version golang-github-gogo-protobuf-dev)"
} >"$ROOT/protocol/SOURCES.md"

echo "gen-proto: wrote $(find "$OUT" -name '*.ts' | wc -l) files to protocol/gen and protocol/SOURCES.md"
