/**
 * Terminals through real containerd + ctr, with ctr running on a real client terminal (node-pty), each case
 * against the reference shim (io.containerd.runc.v2) and ours (io.containerd.ts.v2), on every selected
 * containerd version: `ctr run -t` and `ctr task exec -t` see a tty of the client's size, a client resize
 * shows in `stty size`, terminal output keeps its tail, and a tty container survives detach and re-attach.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
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
import { ptyCtr, type PtyTerminal } from '../harness/pty-terminal.js';
import { exec, repoRoot, sleep, uniqueId, waitFor } from '../harness/util.js';
import * as sys from '../../io/sys.js';

const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';
const short = (rt: Runtime) => (rt === OURS ? 'ts' : 'runc');
/**
 * A shell reading commands from the terminal in cooked mode. Not an interactive `sh`: busybox ash's line
 * editor asks the terminal for the cursor position (ESC[6n) and swallows input while it waits for an answer.
 */
const COMMAND_LOOP = 'echo READY-$((6*7)); while read c; do eval "$c"; done';
/** What COMMAND_LOOP prints once it runs and its output reaches the client: only then is it safe to type. */
const READY = /READY-42\n/;

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

/**
 * The size of the terminal the container's command loop sees, read from the host (TIOCGWINSZ on its stdin),
 * or undefined before the loop runs. ctr sends its first ResizePty only after Start returns, so a command
 * typed as soon as READY shows can run while the pty is still 0x0 (`stty size` then fails, with any shim):
 * the tests wait for ctr's size before they type.
 */
async function loopTtySize(cd: Containerd, id: string): Promise<string | undefined> {
  const ps = await cd.ctr(['task', 'ps', id], { allowFail: true });
  const pids = ps.stdout.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);
  for (const pid of pids) {
    if (!(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('READY-')) continue;
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

async function waitForLoopSize(cd: Containerd, id: string, want: string): Promise<void> {
  let last: string | undefined;
  await waitFor(async () => ((last = await loopTtySize(cd, id)) === want ? true : undefined), 20_000, `terminal size ${want}`).catch((err: Error) => {
    throw new Error(`${err.message} (last seen: ${last})`);
  });
}

/** When a terminal gives no answer: the containerd/shim log tail (SHIM_TEST_DEBUG=1) and tty-diag.py (SHIM_TEST_TTY_DIAG=1). */
async function postMortem(cd: Containerd, id: string, c?: PtyTerminal): Promise<void> {
  if (process.env.SHIM_TEST_DEBUG) console.log(await cd.logTail(120));
  if (process.env.SHIM_TEST_TTY_DIAG === '1') {
    const script = join(repoRoot(), 'test', 'fixtures', 'tty-diag.py');
    const env = { ...process.env, TTY_DIAG_POKE: '1' };
    console.log(await exec('python3', [script, id], { allowFail: true, env }).then((r) => r.stdout + r.stderr, String));
    await sleep(2000);
    if (c) console.log(`output after the poke: ${JSON.stringify(c.text().slice(-300))}`);
  }
}

/**
 * ctr's own log lines (e.g. `error="cannot resize a stopped container"` when its first ResizePty races with the
 * exit of a short process, seen with both runtimes), which land in the same terminal as the container's output.
 */
const stripCtrLog = (text: string): string => text.replace(/(\x1b\[\d+m)?(error|ERRO|WARN|time=)[^\n]*\n/g, '');

/**
 * One `ctr run -t` of a long output: every line, including the unterminated last one, must arrive.
 * Returns a problem description, or '' when the output is complete.
 */
async function ttyTail(cd: Containerd, rt: Runtime): Promise<string> {
  const id = uniqueId('ttyseq');
  const c = ptyCtr(cd, ['run', '-t', '--rm', '--runtime', rt, IMG, id, 'sh', '-c', 'seq 1 20000; printf last-line-no-newline']);
  try {
    const e = await Promise.race([c.exited, sleep(60_000).then(() => undefined)]);
    assert.equal(e?.exitCode, 0, c.text().slice(-300));
    const want = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('') + 'last-line-no-newline';
    const text = stripCtrLog(c.text() + '\n').slice(0, -1);
    if (!text.endsWith(want)) return `tail: ${JSON.stringify(text.slice(-80))}, length ${text.length} vs ${want.length}`;
    // Nothing else but terminal control noise before the output.
    assert.ok(text.length - want.length < 64, `unexpected extra output: ${JSON.stringify(text.slice(0, text.length - want.length))}`);
    return '';
  } finally {
    await c.kill();
    await cleanup(cd, id);
  }
}

for (const version of selectedVersions()) {
  describe(`terminals on containerd ${version}`, () => {
    let cd: Containerd;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
    });
    after(async () => {
      await cd?.stop();
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: ctr run -t sees a tty of the client's size; a client resize shows in stty size`, async () => {
        const id = uniqueId('tty');
        const c = ptyCtr(cd, ['run', '-t', '--rm', '--runtime', rt, IMG, id, 'sh', '-c', COMMAND_LOOP], 100, 40);
        try {
          await c.expect(READY, 'shell ready');
          await waitForLoopSize(cd, id, '40 100');
          c.write('[ -t 0 ] && [ -t 1 ] && echo "IS-A-""TTY"; tty; stty size\r');
          await c.expect(/IS-A-TTY\n\/dev\/pts\/\d+\n40 100\n/, 'tty and initial size').catch(async (err: unknown) => {
            await postMortem(cd, id, c);
            throw err;
          });
          const mark = c.text().length;
          c.pty.resize(120, 50); // SIGWINCH to ctr → ResizePty
          await waitFor(async () => {
            const from = c.text().length;
            c.write('stty size\r');
            return (await c.expect(/(\d+ \d+)\n/, 'stty size', from, 5000))[1] === '50 120';
          }, 20_000, 'resized to 50 120');
          assert.ok(c.text().length > mark);
          c.write('exit 3\r');
          const e = await Promise.race([c.exited, sleep(30_000).then(() => undefined)]);
          assert.equal(e?.exitCode, 3, c.text().slice(-300));
        } finally {
          await c.kill();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: terminal output arrives complete up to the last line (3 runs)`, async (t) => {
        for (let run = 0; run < 3; run++) {
          const problem = await ttyTail(cd, rt);
          if (!problem) continue;
          // The 1.6.20 reference can lose the tail of a terminal's output (seen: stopped at line 15123 of 20000).
          if (rt === OURS) assert.fail(`run ${run + 1}: ${problem}`);
          t.diagnostic(`reference, run ${run + 1}: ${problem}`);
        }
      });

      test(`${short(rt)}: ctr task exec -t sees a tty; resize shows; exit code returned`, async (t) => {
        const id = uniqueId('etty');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sleep', '600']);
        await waitTaskStatus(cd, id, 'RUNNING');
        const c = ptyCtr(cd, ['task', 'exec', '-t', '--exec-id', 'sh1', id, 'sh', '-c', COMMAND_LOOP], 90, 30);
        try {
          await c.expect(READY, 'exec shell ready');
          await waitForLoopSize(cd, id, '30 90');
          c.write('[ -t 0 ] && echo "IS-A-""TTY"; stty size\r');
          await c.expect(/IS-A-TTY\n30 90\n/, 'exec tty and size').catch(async (err: unknown) => {
            await postMortem(cd, id, c);
            throw err;
          });
          c.pty.resize(132, 43);
          await waitFor(async () => {
            const from = c.text().length;
            c.write('stty size\r');
            return (await c.expect(/(\d+ \d+)\n/, 'stty size', from, 5000))[1] === '43 132';
          }, 20_000, 'exec resized to 43 132');
          c.write('exit 5\r');
          const e = await Promise.race([c.exited, sleep(30_000).then(() => undefined)]);
          assert.equal(e?.exitCode, 5, c.text().slice(-300));
          // The container is untouched by the exec's end.
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
          // A tty exec of a short command returns its whole output.
          const d = ptyCtr(cd, ['task', 'exec', '-t', '--exec-id', 'seq', id, 'seq', '1', '3000']);
          try {
            const de = await Promise.race([d.exited, sleep(30_000).then(() => undefined)]);
            assert.equal(de?.exitCode, 0);
            const want = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join('');
            const complete = stripCtrLog(d.text()).endsWith(want);
            // The tail can be cut in the test's own client terminal when ctr exits: with both shims, at the same
            // byte (`…2498\n2`, ~16 KiB as the client pty sees it), and node-pty alone does it without any shim
            // (README, known problems). So a cut tail is reported; the output seen must still be seq's, in order.
            // The strict tail check for ours is the `ctr run -t` tail test above, where ctr exits later.
            // A cut can fall inside a line's `\r\r\n` (the container's and the client's pty each add a `\r`), leaving
            // carriage returns that text() cannot fold into a newline: they are part of the cut, not of the output.
            const got = stripCtrLog(d.text()).replace(/\r+$/, '');
            const start = got.indexOf('1\n2\n3\n');
            assert.ok(start >= 0 && want.startsWith(got.slice(start)), `tty exec output is not seq's: ${JSON.stringify(got.slice(-60))}`);
            if (!complete) t.diagnostic(`${short(rt)}: tail of a tty exec cut at the client: ${JSON.stringify(d.text().slice(-60))}`);
          } finally {
            await d.kill();
          }
        } finally {
          await c.kill();
          await cleanup(cd, id);
        }
      });

      test(`${short(rt)}: tty container: attach, detach, re-attach; the counter keeps going`, async () => {
        const id = uniqueId('tatt');
        const counter = 'i=0; while true; do i=$((i+1)); echo n$i; sleep 0.05; done';
        const starter = ptyCtr(cd, ['run', '-d', '-t', '--runtime', rt, IMG, id, 'sh', '-c', counter]); // -t needs a client terminal
        try {
          const started = await Promise.race([starter.exited, sleep(60_000).then(() => undefined)]);
          assert.equal(started?.exitCode, 0, starter.text());
          await waitTaskStatus(cd, id, 'RUNNING');
          const lastOf = (t: string) => Math.max(0, ...[...t.matchAll(/n(\d+)\n/g)].map((m) => Number(m[1])));
          const first = ptyCtr(cd, ['task', 'attach', id]);
          try {
            await waitFor(() => lastOf(first.text()) >= 10, 20_000, `first attach sees the counter: ${JSON.stringify(first.text().slice(-100))}`);
          } finally {
            await first.kill(); // SIGKILL: ctr cannot forward it, the client just goes away
          }
          const last1 = lastOf(first.text());
          await sleep(500);
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
          const second = ptyCtr(cd, ['task', 'attach', id]);
          try {
            await waitFor(() => lastOf(second.text()) > last1 + 10, 20_000, `re-attach sees the counter continue past ${last1}: ${JSON.stringify(second.text().slice(-100))}`);
          } finally {
            await second.kill();
          }
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
        } finally {
          await starter.kill();
          await cleanup(cd, id);
        }
      });
    }
  });
}
