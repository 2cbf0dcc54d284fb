/**
 * Rollback of an in-place upgrade. The old image passes the command that starts it again (its own code,
 * kept where a new install cannot overwrite it) in the environment; the new image arms a guard as the first
 * thing it does in resume mode: whatever makes it exit before it serves (an exception, process.exit, a wrong
 * state format) execs that command instead, with the same state and fds. A rollback never rolls back again.
 */
import { constants, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IN_SEA } from '../sea/self.js';
import { SHIM_BUILD_ID, SHIM_REVISION, SHIM_VERSION } from '../version.js';
import { execve, keepAcrossExec } from '../platform/exec.js';
import type { BuildInfo } from './state.js';

/** The state file of a resume (set by the old image). */
export const RESUME_ENV = 'CONTAINERD_SHIM_TS_RESUME';
/** JSON argv of the previous image, for the guard. */
export const ROLLBACK_ENV = 'CONTAINERD_SHIM_TS_ROLLBACK';
/** JSON { build, reason }: set when an image was started by a rollback. */
export const ROLLED_BACK_ENV = 'CONTAINERD_SHIM_TS_ROLLED_BACK';

export const CODE_DIR = process.env.CONTAINERD_SHIM_TS_CODE_DIR ?? '/run/containerd-shim-ts/code';
const SCRIPT_FILES = ['containerd-shim-ts-v2.cjs', 'shim.js', 'shim.js.cache', 'koffi.node', 'package.json'];

export const thisBuild = (): BuildInfo => ({ version: SHIM_VERSION, revision: SHIM_REVISION, build: SHIM_BUILD_ID });

/**
 * Keeps this build's code where installing another build cannot touch it, so that a daemon can be rolled
 * back to it: the script form's files are copied once per build under CODE_DIR (only if the files on disk
 * are still this build's); the single executable is unpacked per build already. Returns the command that runs
 * this build (argv[0] executed), or a reason. Synchronous and small: called once, while serving is paused.
 */
export function preserveOwnCode(): { argv: string[]; fds: number[] } | string {
  if (IN_SEA) {
    // The unpacked executable may be pruned by later installs: an open fd keeps it runnable.
    const fd = openSync(process.execPath, constants.O_RDONLY);
    return { argv: [`/proc/self/fd/${fd}`, 'resume'], fds: [fd] };
  }
  const loader = process.argv[1];
  if (!loader) return 'cannot tell where this build is';
  const dir = join(CODE_DIR, SHIM_BUILD_ID);
  const kept = join(dir, 'containerd-shim-ts-v2.cjs');
  if (!existsSync(kept)) {
    const from = dirname(loader);
    let bundle = '';
    try {
      bundle = readFileSync(join(from, 'shim.js'), 'latin1');
    } catch (err) {
      return `this build's code is gone from ${from}: ${(err as Error).message}`;
    }
    if (!bundle.includes(SHIM_BUILD_ID)) return `${from} holds another build now; this build's code cannot be kept for a rollback`;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    for (const f of SCRIPT_FILES) if (existsSync(join(from, f))) copyFileSync(join(from, f), join(tmp, f));
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another daemon kept it first
    }
  }
  return { argv: [process.execPath, ...process.execArgv, kept, 'resume'], fds: [] };
}

let resumed = false;
let guardArmed = false;

/** Resume mode: from here until resumed() is called, an exit becomes a rollback. */
export function armRollbackGuard(): void {
  if (guardArmed || !process.env[ROLLBACK_ENV]) return;
  guardArmed = true;
  process.on('exit', (code) => {
    if (!resumed) rollBack(`the new build exited with status ${code} while resuming`);
  });
}

/** The new image serves: no rollback any more. */
export function markResumed(): void {
  resumed = true;
  delete process.env[ROLLBACK_ENV];
  delete process.env[ROLLED_BACK_ENV];
  delete process.env[RESUME_ENV];
}

/**
 * Execs the previous image with the same state. Returns only when there is no previous image to go back to
 * (this is one already) or the exec failed; the caller then exits, as without a guard.
 */
export function rollBack(reason: string): void {
  const raw = process.env[ROLLBACK_ENV];
  if (!raw || resumed) return;
  let argv: string[];
  try {
    argv = JSON.parse(raw) as string[];
  } catch {
    return;
  }
  process.stderr.write(`containerd-shim-ts-v2: rolling back the upgrade: ${reason}\n`);
  const env: Record<string, string | undefined> = { ...process.env, [ROLLED_BACK_ENV]: JSON.stringify({ build: thisBuild(), reason }) };
  delete env[ROLLBACK_ENV];
  // The fds the state names lost close-on-exec in the old image; Node may have set it again on some.
  try {
    const state = JSON.parse(readFileSync(process.env[RESUME_ENV] ?? '', 'utf8')) as { keepFds?: number[] };
    for (const fd of state.keepFds ?? []) {
      try {
        keepAcrossExec(fd);
      } catch {
        /* closed meanwhile: the previous image will say so */
      }
    }
  } catch {
    /* no readable state: the previous image reports it */
  }
  const errno = execve(argv[0]!, argv, env);
  process.stderr.write(`containerd-shim-ts-v2: rollback exec of ${argv[0]} failed: errno ${errno}\n`);
}
