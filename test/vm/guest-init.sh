#!/bin/sh
# /sbin/vm-init in the test VM, run by tini (PID 1): mounts what a container host has (proc, sys, pure cgroup v2
# with its controllers enabled, tmpfs /run and /tmp, devpts), the checkout read-only at the host's path and the
# results directory over 9p, runs /vm-results/command.sh with its output and exit status into the results
# directory, and powers off. Kernel command line: shim_vm.src=<checkout path on the host>.
# A line "SHIM_VM_FAIL: <reason>" on the console tells the host why the VM powered off without a status.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
fail() {
  echo "SHIM_VM_FAIL: vm-init: $*" >/dev/console
  sync
  busybox poweroff -f
}
mount -t proc proc /proc || fail "mount proc"
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount cgroup2 on /sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
# What udev/systemd make and devtmpfs does not: crun reads `update --resources -` from /dev/stdin.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -o remount,rw / 2>/dev/null
busybox hostname vm
ip link set lo up

src=
for arg in $(cat /proc/cmdline); do
  case $arg in shim_vm.src=*) src=${arg#shim_vm.src=} ;; esac
done
modprobe 9pnet_virtio && modprobe 9p || fail "modprobe 9p failed"
# msize: 9p moves data in messages of this size; the default (8 KiB) makes reading node's bundles slow.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /vm-results || fail "mount 9p results failed"
if [ -n "$src" ]; then
  mkdir -p "$src"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro,cache=loose src "$src" || fail "mount 9p checkout at $src failed"
fi
# overlay for containerd's snapshotter; tun so that `criu check` finds /dev/net/tun.
modprobe overlay 2>/dev/null
modprobe tun 2>/dev/null
# As systemd does on a cgroup v2 host: every controller available to the root's children.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done

[ -f /vm-results/command.sh ] || fail "no command.sh in the results directory"
echo "SHIM_VM_RUNNING"  >/dev/console
cd "${src:-/}"
/bin/sh /vm-results/command.sh </dev/null >/vm-results/stdout 2>/vm-results/stderr
echo $? >/vm-results/status.tmp
sync
mv /vm-results/status.tmp /vm-results/status
cd /
umount /vm-results "$src" 2>/dev/null
sync
echo "SHIM_VM_DONE" >/dev/console
busybox poweroff -f
