/**
 * Scheduling of a spare daemon: its start-up must not take CPU from the containers being created beside it,
 * and once started it must answer at once.
 *
 * Measured (2 cores, a spare booting while the container of the start that launched it was created): runc
 * create took 4 ms longer (medians of 25 interleaved runs: 38.9 vs 34.7 ms without a spare booting) at
 * nice 19. A nice-19 task is still SCHED_OTHER: it keeps a CPU for up to a wakeup granularity before a waking
 * nice-0 task gets it, and runc create is a chain of short wake-ups (runc, runc init's stages). A SCHED_IDLE
 * task is preempted by any other at once.
 *
 * Linux keeps the policy and the nice value per thread: both are set on every thread (threads started later
 * inherit them from the thread that starts them).
 */
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import koffi from 'koffi';

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;

type SetScheduler = (tid: number, policy: number, param: Buffer) => number;
let setScheduler: SetScheduler | undefined;
// struct sched_param { int sched_priority; }: 0 for both policies.
const param = Buffer.alloc(4);

function threads(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [process.pid];
  }
}

function setPolicy(tid: number, policy: number): void {
  setScheduler ??= koffi.load('libc.so.6').func('int sched_setscheduler(int pid, int policy, void *param)') as SetScheduler;
  setScheduler(tid, policy, param); // a refusal (not root) or a thread just ended: nothing to do
}

/** Every thread SCHED_IDLE: runs only when no ordinary task wants the CPU. */
export function background(): void {
  for (const tid of threads()) setPolicy(tid, SCHED_IDLE);
}

/** Every thread back to SCHED_OTHER at `nice` (default 0), as a daemon started by `start` runs. */
export function foreground(nice = 0): void {
  for (const tid of threads()) {
    setPolicy(tid, SCHED_OTHER);
    try {
      setPriority(tid, nice);
    } catch {
      /* not allowed to raise it (not root), or the thread ended */
    }
  }
}
