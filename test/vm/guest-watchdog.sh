#!/bin/sh
# The test VM's watchdog, started in the guest by test/harness/vm.ts before the command, its output on the
# console. Every SHIM_VM_HEARTBEAT_S (30) seconds a heartbeat line: a guest that prints nothing for minutes is
# frozen (emulation or host trouble), not a stuck test. When the guest's test reporter
# (test/vm/progress-reporter.ts, which touches /run/shim-vm-progress on every test event) has made no progress
# for SHIM_VM_STALL_DUMP_S (120) seconds, a dump of what the test's processes are doing (ps with wchan, kernel
# stacks, blocked tasks, containerd's tasks and log tail, memory), repeated every SHIM_VM_STALL_DUMP_S while stuck.
progress=/run/shim-vm-progress
beat=${SHIM_VM_HEARTBEAT_S:-30}
quiet=${SHIM_VM_STALL_DUMP_S:-120}
started=$(date +%s)
last_dump=0
# The kernel's own reports of a stuck guest (soft lockups, RCU stalls, hung tasks) with their stack traces: the
# boot stays quiet (loglevel=4 on the kernel command line), from here on every kernel message reaches the console.
echo 7 >/proc/sys/kernel/printk
sysctl -qw kernel.softlockup_all_cpu_backtrace=1 kernel.hung_task_timeout_secs=60 2>/dev/null

section() { echo "SHIM_VM_WATCHDOG --- $*"; }

dump() {
  echo "SHIM_VM_WATCHDOG begin: no test progress for $1 s (uptime $(cut -d' ' -f1 /proc/uptime) s); current: $(cat "$progress" 2>/dev/null)"
  section "load $(cat /proc/loadavg); memory: $(free -m | awk '$1 == "Mem:" { print $3 " MB used, " $7 " MB available" }')"
  for p in cpu memory io; do [ -r /proc/pressure/$p ] && section "pressure $p: $(head -n1 /proc/pressure/$p)"; done
  section "processes (pid ppid state seconds wchan args)"
  # User processes only: kernel threads are children of kthreadd (pid 2).
  ps --ppid 2 -p 2 --deselect -o pid=,ppid=,stat=,etimes=,wchan:28=,args= | cut -c1-220
  for pid in $(ps --ppid 2 -p 2 --deselect -o pid=); do
    [ "$pid" = $$ ] && continue
    comm=$(cat /proc/$pid/comm 2>/dev/null) || continue
    case $comm in ps | cut | sh | sleep | cat) continue ;; esac
    stack=$(grep -v '^\[<0>\] \(do_syscall_64\|entry_SYSCALL_64\)' /proc/$pid/stack 2>/dev/null | sed 's/^\[<0>\] //' | head -n 8 | tr '\n' ' ')
    section "$pid $comm $(awk '{ print $3 }' /proc/$pid/stat 2>/dev/null): ${stack:-?}"
  done
  section "blocked tasks (sysrq w) follow in the kernel log"
  echo w >/proc/sysrq-trigger 2>/dev/null
  for cfg in $(ps -C containerd -o args= | sed -n 's/.*--config \([^ ]*\).*/\1/p'); do
    dir=${cfg%/config.toml}
    section "containerd $dir: tasks"
    for ns in $(timeout 20 ctr --address "$dir/c.sock" namespaces ls -q 2>&1); do
      timeout 20 ctr --address "$dir/c.sock" -n "$ns" tasks ls 2>&1 | sed "s|^|[$ns] |"
    done
    section "containerd $dir: log tail"
    tail -n 25 "$dir/containerd.log" 2>/dev/null | cut -c1-300
  done
  section "kernel log tail"
  dmesg 2>/dev/null | tail -n 15
  echo "SHIM_VM_WATCHDOG end"
}

while sleep "$beat"; do
  now=$(date +%s)
  mt=$(stat -c %Y "$progress" 2>/dev/null || echo "$started")
  idle=$((now - mt))
  echo "SHIM_VM_ALIVE uptime $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg), last test progress ${idle} s ago"
  if [ "$idle" -ge "$quiet" ] && [ $((now - last_dump)) -ge "$quiet" ]; then
    dump "$idle"
    last_dump=$(date +%s)
  fi
done
