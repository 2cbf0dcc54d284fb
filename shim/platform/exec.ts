/**
 * execve(2) of the running daemon into another build (in-place upgrade): the pid, the children, the
 * subreaper flag and every fd without close-on-exec stay. Node opens everything close-on-exec, so the fds
 * to keep are cleared first. Bound lazily with koffi; only ever called synchronously, right before the exec.
 */
import koffi from 'koffi';

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

interface Libc {
  fcntl: (fd: number, cmd: number, arg: number) => number;
  execve: (path: string, argv: (string | null)[], envp: (string | null)[]) => number;
}

let libc: Libc | undefined;

function bind(): Libc {
  libc ??= (() => {
    const lib = koffi.load('libc.so.6');
    return {
      fcntl: lib.func('int fcntl(int fd, int cmd, int arg)') as Libc['fcntl'],
      execve: lib.func('int execve(const char *path, const char **argv, const char **envp)') as Libc['execve'],
    };
  })();
  return libc;
}

/** Lets `fd` survive an execve; throws when it is not open. */
export function keepAcrossExec(fd: number): void {
  const flags = bind().fcntl(fd, F_GETFD, 0);
  if (flags < 0) throw new Error(`fd ${fd} is not open (errno ${koffi.errno()})`);
  if (flags & FD_CLOEXEC && bind().fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) throw new Error(`fcntl(${fd}, F_SETFD): errno ${koffi.errno()}`);
}

/** Closes `fd` at the next execve again (after a failed one). */
export function closeAtExec(fd: number): void {
  const flags = bind().fcntl(fd, F_GETFD, 0);
  if (flags >= 0) bind().fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/** Replaces this process's program. Returns only on failure, with errno. */
export function execve(path: string, argv: readonly string[], env: Readonly<Record<string, string | undefined>>): number {
  const envp = Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  bind().execve(path, [...argv, null], [...envp, null]);
  return koffi.errno();
}
