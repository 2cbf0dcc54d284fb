/**
 * After a `start` of the single executable: make sure a warm spare daemon of this build waits for the next one
 * (what scripts/shim-wrapper.sh's spawn_spare does for the script form). Started from the `start`, not by a
 * daemon, so that it is nobody's child once `start` exits; at nice 19, and SCHED_IDLE once the spare's code
 * runs (platform/sched.ts; koffi is not loaded here, in the start's path), so that its start-up does not
 * compete with the container being created. One at a time: <build>.booting holds the booting spare's pid.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { liveSpareFifos } from './spare-fifos.js';
import { processExists as isAlive } from '../../reaper/children.js';
import { keepsSpare, SPARE_OWNER_ENV, spareBootingPath } from '../spare/spare-files.js';
import { DAEMON_NODE_OPTIONS, selfCommand } from './self.js';

/** Room in argv for the title a spare takes once it serves a container (process.title cannot grow argv). */
const TITLE_ROOM = ' '.repeat(200);

export function spawnSpare(): void {
  if (!keepsSpare(process.env)) return;
  if (liveSpareFifos().length > 0) return;
  const booting = spareBootingPath();
  try {
    const pid = Number(readFileSync(booting, 'latin1').trim());
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) return;
    unlinkSync(booting);
  } catch {
    /* no booting spare, or it went away meanwhile */
  }
  let fd: number;
  try {
    fd = openSync(booting, 'wx', 0o600); // another start spawns it
  } catch {
    return;
  }
  try {
    const { file, args } = selfCommand(['spare', TITLE_ROOM]);
    const child = spawn(file, args, {
      cwd: '/',
      // Not detached (a session of its own): it takes a process group of its own itself, and stays in
      // containerd's session, where its nice 19 ranks it below the others (platform/detach.ts says why).
      stdio: 'ignore',
      env: { ...process.env, NODE_OPTIONS: DAEMON_NODE_OPTIONS, [SPARE_OWNER_ENV]: process.env[SPARE_OWNER_ENV] || String(process.ppid) },
    });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) return;
    try {
      setPriority(child.pid, 19);
    } catch {
      /* gone already, or not allowed: it still works, only competes more */
    }
    writeSync(fd, String(child.pid));
  } finally {
    closeSync(fd);
  }
}
