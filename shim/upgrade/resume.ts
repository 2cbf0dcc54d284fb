/**
 * The new image's side of an in-place upgrade (`<binary> resume`, run by execve from the previous image):
 * read the state, rebuild the daemon around the same fds, serve. Until it serves, any failure rolls back to
 * the previous image (rollback.ts). Also `upgrade-check`, which the old image runs first.
 */
import { closeSync, readFileSync, rmSync } from 'node:fs';
import { IN_SEA } from '../sea/self.js';
import { BROKEN_RESUME_FOR_TESTS } from '../version.js';
import { encodeJson, type CheckResponse, type UpgradeReport } from './messages.js';
import { RESUME_ENV, ROLLED_BACK_ENV, armRollbackGuard, markResumed, preserveOwnCode, rollBack, thisBuild } from './rollback.js';
import { RESUMABLE_FORMATS, type DaemonHandoff } from './state.js';

export async function runResume(): Promise<void> {
  armRollbackGuard();
  if (BROKEN_RESUME_FOR_TESTS) {
    process.stderr.write('containerd-shim-ts-v2: this test build exits at resume\n');
    process.exit(3);
  }
  const statePath = process.env[RESUME_ENV];
  if (!statePath) throw new Error(`resume: ${RESUME_ENV} is not set (this action is run by the shim itself)`);
  // Synchronous: nothing is served until the state is read, and the file is small.
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as DaemonHandoff;
  if (!RESUMABLE_FORMATS.includes(state.format)) {
    rollBack(`state format ${state.format} is not one this build resumes (${RESUMABLE_FORMATS.join(', ')})`);
    throw new Error(`resume: unknown state format ${state.format}`);
  }
  if (state.pid !== process.pid) throw new Error(`resume: the state is of process ${state.pid}, not ${process.pid}`);
  let rolledBack: { build: UpgradeReport['from']; reason: string } | undefined;
  try {
    rolledBack = process.env[ROLLED_BACK_ENV] ? JSON.parse(process.env[ROLLED_BACK_ENV]!) : undefined;
  } catch {
    rolledBack = undefined;
  }
  const { prepareDaemon } = await import('../serve.js');
  const daemon = prepareDaemon(state.flags, state);
  const report: UpgradeReport = {
    pid: process.pid,
    result: rolledBack ? 'rolled-back' : 'upgraded',
    from: state.from,
    to: thisBuild(),
    pauseMs: Date.now() - state.pausedAt,
    containers: state.containers.map((c) => c.id),
    ...(rolledBack ? { reason: `${rolledBack.build.version} (${rolledBack.build.build}): ${rolledBack.reason}` } : {}),
  };
  await daemon.adopt(state, report);
  markResumed();
  rmSync(statePath, { force: true });
  // The previous image's kept executable (single file) is not needed any more.
  for (const fd of state.rollback.fds) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }
  // This build's own code is kept for a later rollback to it (the install that brought it may be replaced).
  if (!IN_SEA) setTimeout(() => void Promise.resolve().then(preserveOwnCode).catch(() => undefined), 1000).unref();
}

/** `upgrade-check`: loads what a resume loads and says which state formats this build resumes. */
export async function runUpgradeCheck(): Promise<string> {
  await import('../serve.js');
  const r: CheckResponse = { build: thisBuild(), formats: RESUMABLE_FORMATS, node: `${process.version}${IN_SEA ? ' (single executable)' : ''}` };
  return Buffer.from(encodeJson(r)).toString('utf8');
}
