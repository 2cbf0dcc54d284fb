/**
 * A spare that forks its daemons instead of becoming one (a zygote). The forked daemon starts with the spare's
 * whole heap — Node booted, every module loaded and warmed up — shared copy-on-write with the spare and with
 * every other daemon forked from it; it pays in private memory only for the pages it writes. The spare stays
 * a spare, so no Node start-up follows each container either.
 *
 * Forking a Node process is not something Node supports, so this does by hand what fork needs there:
 *  - V8 maps its pages MADV_DONTFORK (v8::base::OS::Allocate): the child would fault on its own heap. Every
 *    mapping is marked MADV_DOFORK right before the fork, in two calls over the whole address space (holes
 *    fail with ENOMEM after the mapped parts are done; the kernel's [vvar] pages refuse and are skipped), with
 *    no JavaScript in between that could map a new page.
 *  - Only the calling thread is copied. The spare runs V8 `--single-threaded` (the wrapper starts it so), so
 *    V8 never needs its worker thread: the child compiles and collects on its main thread. libuv's threadpool
 *    restarts itself in the child (pthread_atfork); the event loop's epoll and signal pipes are libuv's to
 *    renew: uv_loop_fork, which Node exports but does not call.
 *  - Node's exit joins the platform's worker threads, which do not exist in the child (it crashed with SIGSEGV
 *    at exit, measured): a forked daemon ends with _exit once the process's 'exit' listeners have run (a fatal
 *    exception is printed first: Node would print it after them).
 *  - process.pid is a value Node set at start-up: it is set again.
 * Fork twice, so that the daemon is nobody's child (re-parented like any daemon whose `start` exited) and the
 * spare has nothing to reap but the short-lived middle process.
 */
import koffi from 'koffi';
import { readFileSync, writeSync } from 'node:fs';
import { IN_SEA } from '../sea/self.js';

const MADV_DOFORK = 11;
const EINTR = 4;
/** The top of user address space on x86_64 and arm64 (48-bit): beyond every mapping a process can have. */
const ADDRESS_SPACE_END = 1n << 47n;

/** CONTAINERD_SHIM_TS_SPARE_FORK=0 in containerd's environment: spares become the daemon themselves (one per start). */
export const SPARE_FORK_ENV = 'CONTAINERD_SHIM_TS_SPARE_FORK';
/** What the spare's node runs with, so that it can fork (scripts/shim-wrapper.sh's spawn_spare gives it). */
export const SPARE_FORK_V8_FLAG = '--single-threaded';

interface Natives {
  fork: () => number;
  exit: (code: number) => void;
  waitpid: (pid: number, status: number[], options: number) => number;
  madvise: (addr: bigint, length: bigint, advice: number) => number;
  getpid: () => number;
  uvDefaultLoop: () => unknown;
  uvLoopFork: (loop: unknown) => number;
}

let natives: Natives | undefined;
let ranges: Array<readonly [bigint, bigint]> | undefined;

/** Whether this process can fork daemons: a spare of the script form started for it, and not turned off. */
export function canForkDaemons(env: NodeJS.ProcessEnv = process.env): boolean {
  return !IN_SEA && env[SPARE_FORK_ENV] !== '0' && process.execArgv.includes(SPARE_FORK_V8_FLAG) && process.platform === 'linux';
}

/** Binds the calls and finds the address ranges once, at the spare's boot (nothing of it on a start's time). */
export function prepareFork(): void {
  if (!natives) {
    const libc = koffi.load('libc.so.6');
    const self = koffi.load(null as unknown as string); // the node executable: libuv's symbols
    natives = {
      fork: libc.func('int fork()') as Natives['fork'],
      exit: libc.func('void _exit(int status)') as Natives['exit'],
      waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)') as Natives['waitpid'],
      madvise: libc.func('int madvise(uintptr_t addr, size_t length, int advice)') as Natives['madvise'],
      getpid: libc.func('int getpid()') as Natives['getpid'],
      uvDefaultLoop: self.func('void *uv_default_loop()') as Natives['uvDefaultLoop'],
      uvLoopFork: self.func('int uv_loop_fork(void *loop)') as Natives['uvLoopFork'],
    };
  }
  ranges ??= forkableRanges(readFileSync('/proc/self/maps', 'latin1'));
}

/**
 * The whole user address space but the kernel's [vvar] pages (a VM_IO mapping: MADV_DOFORK fails there with
 * EINVAL and stops). They do not move while the process lives; everything else may appear anywhere.
 */
export function forkableRanges(maps: string): Array<readonly [bigint, bigint]> {
  let low = ADDRESS_SPACE_END;
  let high = 0n;
  for (const line of maps.split('\n')) {
    if (!/\[vvar/.test(line)) continue;
    const [from, to] = line.slice(0, line.indexOf(' ')).split('-').map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
    if (from < low) low = from;
    if (to > high) high = to;
  }
  const pageSize = 0x1000n;
  if (high === 0n) return [[pageSize, ADDRESS_SPACE_END - pageSize]];
  const out: Array<readonly [bigint, bigint]> = [[pageSize, low - pageSize]];
  if (high < ADDRESS_SPACE_END) out.push([high, ADDRESS_SPACE_END - high]);
  return out;
}

export type ForkRole = 'spare' | 'daemon';

/**
 * Forks a daemon off this spare. Returns 'spare' in the spare (the daemon exists by then) and 'daemon' in the
 * daemon, whose event loop works and whose exit is safe. Throws in the spare when no daemon could be made.
 * Synchronous throughout: nothing else may run between the marking and the fork.
 */
export function forkDaemon(): ForkRole {
  prepareFork();
  const n = natives!;
  for (const [from, length] of ranges!) n.madvise(from, length, MADV_DOFORK); // ENOMEM for the holes: expected
  const middle = n.fork();
  if (middle < 0) throw new Error(`fork: errno ${koffi.errno()}`);
  if (middle === 0) {
    // The middle process: fork the daemon and go, so that the daemon is re-parented.
    const daemon = n.fork();
    if (daemon !== 0) n.exit(daemon > 0 ? 0 : 1);
    return becomeForkedProcess(n);
  }
  const status = [0];
  let r: number;
  do r = n.waitpid(middle, status, 0);
  while (r < 0 && koffi.errno() === EINTR);
  if (r !== middle || status[0] !== 0) throw new Error(`fork: the middle process ended with status ${status[0]}`);
  return 'spare';
}

function becomeForkedProcess(n: Natives): ForkRole {
  // Before anything can use the loop: it still shares its epoll instance with the spare.
  if (n.uvLoopFork(n.uvDefaultLoop()) !== 0) n.exit(1);
  Object.defineProperty(process, 'pid', { value: n.getpid(), enumerable: true, configurable: true, writable: false });
  exitWithoutTeardown(n);
  return 'daemon';
}

/**
 * Ends the process with _exit once the 'exit' listeners have run (process.exit, the loop running dry, a fatal
 * exception: each emits 'exit'), with the code Node would have exited with.
 */
function exitWithoutTeardown(n: Natives): void {
  const emit = process.emit.bind(process) as (event: string | symbol, ...args: unknown[]) => boolean;
  const patched = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
    const handled = emit(event, ...args);
    if (event === 'exit') n.exit(exitCode(args[0]));
    return handled;
  };
  (process as { emit: unknown }).emit = patched;
  // Node prints a fatal exception only after 'exit' (too late, once exiting is _exit): say it first, as Node would.
  process.on('uncaughtExceptionMonitor', (err) => {
    if (process.listenerCount('uncaughtException') > 0) return; // handled: not fatal
    try {
      writeSync(2, `${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    } catch {
      /* no stderr */
    }
  });
  (process as unknown as { reallyExit: (code?: number) => void }).reallyExit = (code?: number) => n.exit(exitCode(code));
}

function exitCode(code: unknown): number {
  const c = typeof code === 'number' ? code : Number(process.exitCode ?? 0);
  return Number.isInteger(c) ? c & 0xff : 1;
}
