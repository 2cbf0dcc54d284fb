/**
 * Letting go of the `start` wrapper once the daemon has answered: stdio onto /dev/null (containerd reads the
 * wrapper's stdout+stderr until EOF) and a session of our own (containerd's signals to `start`'s process
 * group must not reach the daemon). dup2 replaces the fds atomically, so nothing else can land on 0-2.
 */
import { closeSync, constants, openSync } from 'node:fs';
import koffi from 'koffi';

let libc: { dup2: (from: number, to: number) => number; setsid: () => number } | undefined;

function bind(): NonNullable<typeof libc> {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      dup2: lib.func('int dup2(int oldfd, int newfd)') as (from: number, to: number) => number,
      setsid: lib.func('int setsid(void)') as () => number,
    };
  }
  return libc;
}

export function detachFromStart(): void {
  const { dup2, setsid } = bind();
  const devNull = openSync('/dev/null', constants.O_RDWR);
  try {
    for (const fd of [0, 1, 2]) {
      if (dup2(devNull, fd) < 0) throw new Error(`dup2(/dev/null, ${fd}): errno ${koffi.errno()}`);
    }
  } finally {
    closeSync(devNull);
  }
  // Fails only if we already lead a process group (not the case for a background job of the wrapper).
  setsid();
}

/** setsid(2) alone, for a process whose stdio is already its own (a spare daemon). */
export function becomeSessionLeader(): void {
  bind().setsid();
}
