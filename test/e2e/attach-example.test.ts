/**
 * examples/attach (dist/examples/attach.js: attach over containerd's gRPC Tasks API, with detach keys) on a real
 * client terminal (node-pty), against containers of the reference shim (io.containerd.runc.v2) and ours
 * (io.containerd.ts.v2), on every selected containerd version: typed commands reach the tty and their output comes
 * back, the size is sent at attach and on SIGWINCH, the detach keys leave the process running (exit 0, terminal
 * restored), output written while detached waits for the next attach, and the exit status of the process becomes
 * the example's. The same for an exec (--exec-id) with other detach keys; without a tty, stdout and stderr come
 * back and ctrl-c leaves; an unknown or stopped container fails with 125. After each exit, the wrapper shell
 * reports the local terminal's modes (restored).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  RUNTIMES,
  listTasks,
  selectedVersions,
  shimBinDir,
  startContainerd,
  waitTaskStatus,
  type Containerd,
  type Runtime,
} from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { PtyTerminal } from '../harness/pty-terminal.js';
import { repoRoot, uniqueId, waitFor } from '../harness/util.js';
import * as sys from '../../io/sys.js';

const IMG = DEFAULT_IMAGE;
const ATTACH = join(repoRoot(), 'dist', 'examples', 'attach.js');
const short = (rt: Runtime) => (rt === 'io.containerd.ts.v2' ? 'ts' : 'runc');
/**
 * A shell reading commands from its tty in cooked mode (not an interactive `sh`: busybox ash's line editor asks
 * the terminal for the cursor position, ESC[6n, and node-pty never answers).
 */
const COMMAND_LOOP = 'echo READY-$((6*7)); while read c; do eval "$c"; done';
const CTRL_P_CTRL_Q = '\x10\x11';

/**
 * The example in a shell that, once the example has exited, prints its exit status and the local terminal's
 * icanon/echo flags (raw mode clears both), then waits for a line before it exits itself: a program that exits
 * right after writing can lose the tail of its output between the pty and node-pty (README, known problems).
 */
function startAttach(cd: Containerd, id: string, extra: string[], cols: number, rows: number): PtyTerminal {
  const flags = 'stty -a | tr " ;" "\\n\\n" | grep -x -e "-\\?icanon" -e "-\\?echo" | tr "\\n" " "';
  // `trap : INT`: a ctrl-c on this terminal is for the example (the example gets default dispositions back).
  const script = `trap : INT; "$0" "$@"; code=$?; echo; echo "AFTER:status=$code $(${flags})."; read line; exit $code`;
  return new PtyTerminal('/bin/sh', ['-c', script, process.execPath, ATTACH, '--address', cd.address, '--namespace', cd.namespace, ...extra, id], cols, rows);
}

/** Waits for the example to exit with `status` and checks that the local terminal is back in cooked mode with echo. */
async function assertExit(p: PtyTerminal, status: number, what: string): Promise<void> {
  const [, after] = await p.expect(/AFTER:([^\n]*)\.\n/, `${what}: the example to exit`, 0, 30_000);
  assert.equal(after?.trim(), `status=${status} icanon echo`, `${what}: exit status and terminal modes; output: ${JSON.stringify(p.text().slice(-300))}`);
  p.write('\n');
  assert.equal(await p.exitCode(), status, `${what}: the wrapper's exit status`);
}

/** `ctr run -d -t` and `ctr task exec -d -t` need a client terminal too, for the moment they run. */
async function ctrOnPty(cd: Containerd, args: string[]): Promise<void> {
  const p = new PtyTerminal(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, ...args], 80, 24);
  try {
    assert.equal(await p.exitCode(60_000), 0, `ctr ${args.join(' ')}: ${p.text()}`);
  } finally {
    await p.kill();
  }
}

async function taskPids(cd: Containerd, id: string): Promise<number[]> {
  const ps = await cd.ctr(['task', 'ps', id], { allowFail: true });
  return ps.stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);
}

/** Size ("rows cols") of the tty of the container's process whose command line contains `marker`, read from the host. */
async function ttySizeOf(cd: Containerd, id: string, marker: string): Promise<string | undefined> {
  for (const pid of await taskPids(cd, id)) {
    if (!(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(marker)) continue;
    let fd = -1;
    try {
      fd = sys.open(`/proc/${pid}/fd/0`, sys.O_RDONLY | sys.O_NOCTTY | sys.O_NONBLOCK);
      const ws = sys.getWinsize(fd);
      return `${ws.rows} ${ws.cols}`;
    } catch {
      return undefined;
    } finally {
      sys.closeQuietly(fd);
    }
  }
  return undefined;
}

/**
 * Waits until the command loop's tty has the size: the ResizePty that attach sends has arrived. Typing only then
 * also avoids a command running on a 0x0 tty (README, known problems).
 */
async function waitForTtySize(cd: Containerd, id: string, want: string, marker = 'READY-'): Promise<void> {
  let last: string | undefined;
  await waitFor(async () => ((last = await ttySizeOf(cd, id, marker)) === want ? true : undefined), 20_000, `tty size ${want}`).catch((err: Error) => {
    throw new Error(`${err.message} (last seen: ${last})`);
  });
}

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

async function taskStatus(cd: Containerd, id: string): Promise<string | undefined> {
  return (await listTasks(cd)).find((t) => t.id === id)?.status;
}

for (const version of selectedVersions()) {
  describe(`examples/attach on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      assert.ok(existsSync(ATTACH), `${ATTACH} is missing: run \`npm run build\` first`);
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    test('an unknown container, and a stopped one: exit 125 with the reason, terminal untouched', async () => {
      const unknown = startAttach(cd, 'no-such-container', [], 80, 24);
      await assertExit(unknown, 125, 'unknown container');
      assert.match(unknown.text(), /attach: .*NOT_FOUND.*no-such-container/);
      const id = uniqueId('ats');
      try {
        await cd.ctr(['run', '-d', '--runtime', 'io.containerd.ts.v2', IMG, id, 'sh', '-c', 'exit 7']);
        await waitTaskStatus(cd, id, 'STOPPED');
        const stopped = startAttach(cd, id, [], 80, 24);
        await assertExit(stopped, 125, 'stopped container');
        assert.match(stopped.text(), new RegExp(`attach: ${id} has exited \\(status 7\\)`));
      } finally {
        await cleanup(cd, id);
      }
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: attach to a tty container: type, resize, detach, output kept while detached, re-attach, exit status`, async () => {
        const id = uniqueId('att');
        const sessions: PtyTerminal[] = [];
        try {
          await ctrOnPty(cd, ['run', '-d', '-t', '--runtime', rt, IMG, id, 'sh', '-c', COMMAND_LOOP]);
          await waitTaskStatus(cd, id, 'RUNNING');

          const first = startAttach(cd, id, [], 100, 40);
          sessions.push(first);
          await waitForTtySize(cd, id, '40 100'); // ResizePty at attach
          first.write('echo "TYPED-""$((6*7))"\r');
          await first.expect(/TYPED-42\n/, 'output of a typed command');

          first.pty.resize(120, 50); // SIGWINCH to the example → ResizePty
          await waitForTtySize(cd, id, '50 120');
          const mark = first.text().length;
          first.write('stty size\r');
          await first.expect(/\n50 120\n/, 'stty size after the resize', mark);

          // A job that writes once we are gone (it waits for a file we create after detaching).
          first.write('(while [ ! -e /tmp/go ]; do sleep 0.05; done; echo "WHILE-""DETACHED") &\r');
          await first.expect(/"WHILE-""DETACHED"\) &\n/, 'the job line echoed by the tty');
          first.write(CTRL_P_CTRL_Q);
          await assertExit(first, 0, 'detach');
          assert.match(first.text(), /attach: detached from /);
          assert.doesNotMatch(first.text(), /WHILE-DETACHED/);
          assert.equal(await taskStatus(cd, id), 'RUNNING', 'the container keeps running after detach');

          await cd.ctr(['task', 'exec', '--exec-id', 'go', id, 'touch', '/tmp/go']);
          // The job has written and exited once the command loop is the only process left.
          await waitFor(async () => ((await taskPids(cd, id)).length === 1 ? true : undefined), 20_000, 'the detached job to finish');

          const second = startAttach(cd, id, [], 90, 30);
          sessions.push(second);
          // Both shims keep a reader on the stdout FIFO: what was written meanwhile waited there.
          await second.expect(/WHILE-DETACHED\n/, 'output written while detached');
          await waitForTtySize(cd, id, '30 90');
          second.write('echo "again-""$((2+3))"\r');
          await second.expect(/again-5\n/, 'the shell still works after re-attach');
          second.write('echo "last-""words"; exit 3\r');
          await assertExit(second, 3, 'exit 3');
          assert.match(second.text(), /last-words\n[^]*AFTER:/, 'output written just before the exit arrives before the example exits');
          await waitTaskStatus(cd, id, 'STOPPED');
        } finally {
          for (const s of sessions) await s.kill();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: a container without a tty: stdout and stderr, no raw mode, ctrl-c leaves, the exit status`, async () => {
        const id = uniqueId('atn');
        const sessions: PtyTerminal[] = [];
        try {
          await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'while read c; do eval "$c"; done']);
          await waitTaskStatus(cd, id, 'RUNNING');
          const first = startAttach(cd, id, [], 80, 24);
          sessions.push(first);
          // No tty in the container, so our terminal stays cooked: it echoes the line and keeps it until the
          // example reads its stdin, which sends it on.
          first.write('echo "out-""$((1+2))"; echo "err-""$((2+2))" >&2\r');
          await first.expect(/out-3\n/, 'stdout');
          await first.expect(/err-4\n/, 'stderr');
          // Our cooked terminal turns ctrl-c into SIGINT for the example, which leaves without touching the process.
          first.write('\x03');
          await assertExit(first, 130, 'ctrl-c');
          assert.equal(await taskStatus(cd, id), 'RUNNING', 'the container keeps running after ctrl-c');

          const second = startAttach(cd, id, [], 80, 24);
          sessions.push(second);
          second.write('echo "still-""here"; exit 3\r');
          await second.expect(/still-here\n/, 'the shell still works after re-attach');
          await assertExit(second, 3, 'exit 3');
        } finally {
          for (const s of sessions) await s.kill();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: --exec-id attaches to an exec's tty; custom detach keys; the exec's exit status`, async () => {
        const id = uniqueId('atx');
        const sessions: PtyTerminal[] = [];
        const loop = COMMAND_LOOP.replace('READY-', 'EXEC-READY-');
        try {
          await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
          await waitTaskStatus(cd, id, 'RUNNING');
          await ctrOnPty(cd, ['task', 'exec', '-d', '-t', '--exec-id', 'sh1', id, 'sh', '-c', loop]);

          const keys = ['--exec-id', 'sh1', '--detach-keys', 'ctrl-x,d'];
          const first = startAttach(cd, id, keys, 110, 35);
          sessions.push(first);
          await waitForTtySize(cd, id, '35 110', 'EXEC-READY-');
          first.write('echo "in-""exec"; [ -t 0 ] && echo "IS-A-""TTY"\r');
          await first.expect(/in-exec\nIS-A-TTY\n/, 'output of a typed command in the exec');
          first.write(CTRL_P_CTRL_Q.slice(0, 1)); // the default keys mean nothing here: ctrl-p goes to the tty
          await first.expect(/\^P/, 'ctrl-p echoed by the exec\'s tty');
          first.write('\x18d');
          await assertExit(first, 0, 'detach');
          assert.ok((await ttySizeOf(cd, id, 'EXEC-READY-')) !== undefined, 'the exec keeps running after detach');

          // Another size, so that seeing it proves this attach is running (raw mode on) before we type.
          const second = startAttach(cd, id, keys, 100, 33);
          sessions.push(second);
          await waitForTtySize(cd, id, '33 100', 'EXEC-READY-');
          // The ctrl-p typed before the detach is still in the shell's line: start a fresh one.
          second.write('\x15echo "exec-""again"\r');
          await second.expect(/exec-again\n/, 'the exec shell still works after re-attach');
          second.write('exit 4\r');
          await assertExit(second, 4, 'exit 4');
          assert.equal(await taskStatus(cd, id), 'RUNNING', 'the container outlives its exec');
        } finally {
          for (const s of sessions) await s.kill();
          await cleanup(cd, id);
        }
      });
    }
  });
}
