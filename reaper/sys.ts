/**
 * The few system calls the reaper needs, bound with koffi. Every call here is non-blocking (WNOHANG,
 * prctl), so the synchronous koffi form is safe on the event loop. Bound lazily, once per process.
 */
import koffi from 'koffi';

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;
const P_ALL = 0;
const WNOHANG = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
const SIGINFO_SIZE = 128;
const SI_PID_OFFSET = 16; // siginfo_t: si_signo, si_errno, si_code (3 × int), padding, then si_pid

interface Libc {
  prctl: (option: number, arg2: number, arg3: number, arg4: number, arg5: number) => number;
  prctlOut: (option: number, out: number[], arg3: number, arg4: number, arg5: number) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
  waitid: (idtype: number, id: number, info: Buffer, options: number) => number;
}

let libc: Libc | undefined;
// One siginfo buffer for every peek: the loop is single-threaded and the call is synchronous.
const siginfo = Buffer.alloc(SIGINFO_SIZE);
const statusOut = [0];

function bind(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    // prctl is variadic in glibc; a fixed arity is correct on x86_64 and arm64 Linux.
    libc = {
      prctl: lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as Libc['prctl'],
      prctlOut: lib.func('prctl', 'int', ['int', koffi.out(koffi.pointer('int')), 'ulong', 'ulong', 'ulong']) as Libc['prctlOut'],
      waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)') as Libc['waitpid'],
      waitid: lib.func('int waitid(int idtype, int id, _Out_ uint8_t *info, int options)') as Libc['waitid'],
    };
  }
  return libc;
}

export function errno(): number {
  return koffi.errno();
}

/** prctl(PR_SET_CHILD_SUBREAPER, 1): orphans below us re-parent to this process instead of init. */
export function becomeSubreaper(): void {
  if (bind().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) {
    throw new Error(`prctl(PR_SET_CHILD_SUBREAPER): errno ${errno()}`);
  }
}

export function clearSubreaper(): void {
  if (bind().prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) !== 0) {
    throw new Error(`prctl(PR_SET_CHILD_SUBREAPER, 0): errno ${errno()}`);
  }
}

export function isSubreaper(): boolean {
  const out = [0];
  return bind().prctlOut(PR_GET_CHILD_SUBREAPER, out, 0, 0, 0) === 0 && out[0] === 1;
}

/**
 * Looks at the first exited child without reaping it: waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT).
 * Returns its pid, 0 when no child has exited, -1 when we have no children at all (ECHILD).
 */
export function peekExited(): number {
  siginfo.writeInt32LE(0, SI_PID_OFFSET); // Linux leaves siginfo untouched when nothing is waitable
  const r = bind().waitid(P_ALL, 0, siginfo, WEXITED | WNOHANG | WNOWAIT);
  if (r !== 0) return -1; // ECHILD; with these flags and a valid buffer no other error can occur
  return siginfo.readInt32LE(SI_PID_OFFSET);
}

export type ReapResult =
  | { readonly kind: 'reaped'; readonly raw: number }
  | { readonly kind: 'running' }
  | { readonly kind: 'not-child' };

/** waitpid(pid, WNOHANG): collects this one pid if it has exited. Never touches any other pid. */
export function reapPid(pid: number): ReapResult {
  if (!(pid > 0)) throw new RangeError(`reapPid: bad pid ${pid}`);
  const r = bind().waitpid(pid, statusOut, WNOHANG);
  if (r === pid) return { kind: 'reaped', raw: statusOut[0] ?? 0 };
  if (r === 0) return { kind: 'running' };
  return { kind: 'not-child' }; // ECHILD: not ours, or already collected
}
