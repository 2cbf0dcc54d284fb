/**
 * execve(2) of the running daemon into another build (in-place upgrade): the pid, the children, the
 * subreaper flag and every fd without close-on-exec stay. Node opens everything close-on-exec, so the fds
 * to keep are cleared first. Bound lazily with koffi; only ever called synchronously, right before the exec.
 */
import koffi from 'koffi';
import { fcntl } from '../../io/sys.js';

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

type Execve = (path: string, argv: (string | null)[], envp: (string | null)[]) => number;
let execveFn: Execve | undefined;

/** Lets `fd` survive an execve; throws when it is not open. */
export function keepAcrossExec(fd: number): void {
  const flags = fcntl(fd, F_GETFD);
  if (flags & FD_CLOEXEC) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}

/** Closes `fd` at the next execve again (after a failed one). */
export function closeAtExec(fd: number): void {
  try {
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  } catch {
    /* closed meanwhile */
  }
}

/** Replaces this process's program. Returns only on failure, with errno. */
export function execve(path: string, argv: readonly string[], env: Readonly<Record<string, string | undefined>>): number {
  const envp = Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  execveFn ??= koffi.load('libc.so.6').func('int execve(const char *path, const char **argv, const char **envp)') as Execve;
  execveFn(path, [...argv, null], [...envp, null]);
  return koffi.errno();
}
