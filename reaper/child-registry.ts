/**
 * Which pids belong to libuv. libuv collects its own children with waitpid(<pid>) on SIGCHLD; if anyone
 * else collects one first, libuv gets ECHILD and the ChildProcess never emits 'exit'. So the reaper must
 * never wait for a pid that a ChildProcess still owns.
 *
 * Every child_process API (spawn, exec, execFile, fork) goes through ChildProcess.prototype.spawn, which
 * sets `pid` synchronously. Wrapping that one method records each pid in the same tick as the spawn,
 * before any SIGCHLD handler can run, for all code in the process, dependencies included. The wrapper
 * changes nothing else: same arguments, same return value, same events.
 */
import { ChildProcess } from 'node:child_process';

type SpawnMethod = (this: ChildProcess, ...args: unknown[]) => unknown;

export interface ChildRegistryHooks {
  /** A ChildProcess got a pid. */
  added(child: ChildProcess, pid: number): void;
}

export class ChildRegistry {
  private readonly children = new Map<number, ChildProcess>();
  // libuv's spawn errno (negative) for children that failed to start, read by Reaper.spawn in the same tick.
  private readonly failures = new WeakMap<ChildProcess, number>();
  private original: SpawnMethod | undefined;
  private wrapper: SpawnMethod | undefined;

  constructor(private readonly hooks: ChildRegistryHooks) {}

  install(): void {
    if (this.wrapper) return;
    const proto = ChildProcess.prototype as unknown as { spawn: SpawnMethod };
    const original = proto.spawn;
    const registry = this;
    const wrapper: SpawnMethod = function (this: ChildProcess, ...args: unknown[]) {
      const result = original.apply(this, args);
      if (registry.wrapper === wrapper) registry.record(this, result);
      return result;
    };
    this.original = original;
    this.wrapper = wrapper;
    proto.spawn = wrapper;
  }

  uninstall(): void {
    const proto = ChildProcess.prototype as unknown as { spawn: SpawnMethod };
    // Someone may have wrapped spawn after us; then ours stays in their chain but turns into a pass-through.
    if (this.wrapper && proto.spawn === this.wrapper && this.original) proto.spawn = this.original;
    this.wrapper = undefined;
    this.original = undefined;
  }

  /** True while libuv still has to collect `pid`. */
  owns(pid: number): boolean {
    const child = this.children.get(pid);
    if (!child) return false;
    // exitCode/signalCode are set when libuv has collected the child, also on paths that emit 'error'
    // instead of 'exit'; from then on the pid is free for reuse and no longer libuv's.
    if (child.exitCode !== null || child.signalCode !== null) {
      this.children.delete(pid);
      return false;
    }
    return true;
  }

  /** Drops the pid once its ChildProcess has emitted 'exit'. */
  release(pid: number, child: ChildProcess): void {
    if (this.children.get(pid) === child) this.children.delete(pid);
  }

  get size(): number {
    return this.children.size;
  }

  /** The libuv errno of a spawn that produced no pid (e.g. -2 for ENOENT), if known. */
  spawnFailure(child: ChildProcess): number | undefined {
    return this.failures.get(child);
  }

  private record(child: ChildProcess, result: unknown): void {
    const pid = child.pid;
    if (typeof pid === 'number' && pid > 0) {
      this.children.set(pid, child);
      this.hooks.added(child, pid);
    } else if (typeof result === 'number' && result < 0) {
      this.failures.set(child, result);
    }
  }
}
