#!/bin/sh
# The test VM's initramfs /init (busybox sh): loads the modules the root disk needs (virtio, ext4; Debian builds
# them as modules), mounts /dev/vda and hands over to tini as PID 1, which runs /sbin/vm-init (guest-init.sh).
# A line "SHIM_VM_FAIL: <reason>" on the console tells the host why the VM powered off early.
bb=/bin/busybox
fail() {
  echo "SHIM_VM_FAIL: initramfs: $*"
  $bb sync
  $bb poweroff -f
}
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /modules/order); do
  $bb insmod "/modules/$m" || fail "insmod $m failed"
done
i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  [ "$i" -gt 600 ] && fail "no /dev/vda after 60 s (is the root disk attached as virtio?)"
  $bb usleep 100000
done
$bb mount -t ext4 /dev/vda /newroot || fail "mount -t ext4 /dev/vda failed"
[ -x /newroot/usr/bin/tini ] || fail "no /usr/bin/tini in the root filesystem"
$bb mount --move /dev /newroot/dev
$bb umount /sys
$bb umount /proc
exec $bb switch_root /newroot /usr/bin/tini -- /sbin/vm-init
