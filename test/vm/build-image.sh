#!/usr/bin/env bash
# Builds the test VM's image from Debian 12 packages only, once per set of inputs, and prints the directory
# that holds it: vmlinuz (linux-image-amd64's kernel, from its .deb: `apt-get download` + `dpkg -x`, never
# installed here), initrd.img (busybox and the modules the root disk needs), rootfs.ext4 (mmdebstrap with
# packages.txt, the kernel's modules, this host's node, guest-init.sh; written by `mke2fs -d`, no loop device).
# The image lives in .cache/vm/<key>/, key = hash of packages.txt, these scripts, the kernel package's version
# and node's binary: a second run with the same inputs only prints the directory.
# Needs root (mmdebstrap's root mode, files owned by root in the image) and apt access to a Debian mirror.
# SHIM_VM_CACHE overrides .cache/vm; SHIM_VM_MIRROR the Debian mirror (default http://deb.debian.org/debian).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(cd "$here/../.." && pwd)
cache=${SHIM_VM_CACHE:-$checkout/.cache/vm}
mirror=${SHIM_VM_MIRROR:-http://deb.debian.org/debian}
security_mirror=${SHIM_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

say() { echo "build-image: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap's root mode writes files owned by root into the image)"
for tool in apt-get apt-cache dpkg mke2fs flock sha256sum gzip; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
# What building and booting need, from Debian (CI's .ci/run installs them up front).
missing=
command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86 qemu-utils"
if [ -n "$missing" ]; then
  say "installing$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    die "missing and apt-get install failed:$missing"
fi
node_bin=$(readlink -f "${SHIM_VM_NODE:-$(command -v node)}") || die "node not found"
[ -x "$node_bin" ] || die "node not found at $node_bin"

# The kernel package linux-image-amd64 points to (e.g. linux-image-6.1.0-57-amd64) and its version.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'; }
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
  apt-get update -qq || true
  kpkg=$(kernel_pkg)
fi
[ -n "$kpkg" ] || die "apt knows no linux-image-amd64 (is a Debian 12 source in apt's lists?)"
kver=${kpkg#linux-image-}
kpkg_version=$(apt-cache show --no-all-versions "$kpkg" | awk '$1 == "Version:" { print $2; exit }')

packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/,$//')
key=$({
  cat "$here/packages.txt" "$here/build-image.sh" "$here/initramfs-init.sh" "$here/guest-init.sh"
  echo "$kpkg $kpkg_version $mirror"
  echo "$node_bin"
  sha256sum <"$node_bin"
} | sha256sum | cut -c1-16)
out=$cache/$key

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d "$cache/build-XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

say "kernel: $kpkg $kpkg_version"
(cd "$work" && chown _apt "$work" 2>/dev/null; apt-get download -q "$kpkg=$kpkg_version" >/dev/null) ||
  die "apt-get download $kpkg failed"
dpkg -x "$work"/"$kpkg"_*.deb "$work/kernel"
[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-$kver in $kpkg"

say "root filesystem: mmdebstrap bookworm with $packages"
mmdebstrap --quiet --variant=essential --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$rootfs" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security_mirror bookworm-security main" >&2 ||
  die "mmdebstrap failed"

# The kernel's modules, without the hardware drivers a VM never sees (sound, GPUs, NICs, ...), then depmod.
kmods=$work/kernel/lib/modules/$kver
mkdir -p "$rootfs/usr/lib/modules/$kver/kernel/drivers/net"
cp -a "$kmods"/modules.* "$rootfs/usr/lib/modules/$kver/"
for d in "$kmods"/kernel/*; do
  case ${d##*/} in drivers | sound) ;; *) cp -a "$d" "$rootfs/usr/lib/modules/$kver/kernel/" ;; esac
done
for d in virtio block char md; do
  [ -d "$kmods/kernel/drivers/$d" ] && cp -a "$kmods/kernel/drivers/$d" "$rootfs/usr/lib/modules/$kver/kernel/drivers/"
done
for m in veth dummy tun macvlan ipvlan; do
  f=$(find "$kmods/kernel/drivers/net" -name "$m.ko*" | head -n1)
  [ -n "$f" ] && cp -a "$f" "$rootfs/usr/lib/modules/$kver/kernel/drivers/net/"
done
chroot "$rootfs" depmod -a "$kver" || die "depmod in the root filesystem failed"

# node at the same path as on this host: dist/containerd-shim-ts-v2 (the script form) names it absolutely.
install -D -m 0755 "$node_bin" "$rootfs$node_bin"
[ -e "$rootfs/usr/local/bin/node" ] || ln -s "$node_bin" "$rootfs/usr/local/bin/node"
install -m 0755 "$here/guest-init.sh" "$rootfs/sbin/vm-init"
mkdir -p "$rootfs/vm-results"
echo vm >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vm\n::1 localhost\n' >"$rootfs/etc/hosts"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# initramfs (newc cpio, written by the guest's static busybox): busybox, the root disk's modules in load order (dependencies first), /init.
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp "$rootfs/usr/bin/busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
dep_file=$rootfs/usr/lib/modules/$kver/modules.dep
load_order=()
add_module() { # $1: path relative to /lib/modules/<kver>, as in modules.dep
  local m=$1 dep
  for seen in "${load_order[@]}"; do [ "$seen" = "$m" ] && return 0; done
  for dep in $(awk -v m="$m:" '$1 == m { $1 = ""; print; exit }' "$dep_file"); do add_module "$dep"; done
  load_order+=("$m")
}
for name in virtio_pci virtio_blk crc32c_generic ext4; do
  rel=$(awk -v n="/$name.ko" 'index($1, n ":") { sub(":", "", $1); print $1; exit }' "$dep_file")
  [ -n "$rel" ] || die "module $name not in modules.dep"
  add_module "$rel"
done
for m in "${load_order[@]}"; do
  cp "$rootfs/usr/lib/modules/$kver/$m" "$ird/modules/"
  basename "$m" >>"$ird/modules/order"
done
install -m 0755 "$here/initramfs-init.sh" "$ird/init"
(cd "$ird" && find . | "$rootfs/usr/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$work/initrd.img"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# ext4 from the directory: used space plus room for images, snapshots and checkpoints made inside.
used_mb=$(du -sm "$rootfs" | cut -f1)
size_mb=$((used_mb + ${SHIM_VM_FREE_MB:-2048}))
mke2fs -q -t ext4 -L shimvm -d "$rootfs" -E root_owner=0:0 -F "$work/rootfs.ext4" "${size_mb}M" || die "mke2fs -d failed"

mkdir -p "$out.new"
mv "$work/vmlinuz" "$work/initrd.img" "$work/rootfs.ext4" "$out.new/"
{
  echo "kernel $kpkg $kpkg_version"
  echo "node $node_bin $("$node_bin" -v 2>/dev/null || true)"
  echo "packages $packages"
  echo "used_mb $used_mb size_mb $size_mb"
  echo "built $(date -u +%FT%TZ) in $(($(date +%s) - started)) s"
} >"$out.new/info.txt"
touch "$out.new/done"
rm -rf "$out"
mv "$out.new" "$out"
# Older images are of no more use; each is a few GB of (sparse) disk.
for old in "$cache"/*/; do
  old=${old%/}
  [ "$old" = "$out" ] || rm -rf "$old"
done
say "built $out in $(($(date +%s) - started)) s ($used_mb MB used)"
echo "$out"
