/**
 * Stdio through real containerd + ctr, each case against the reference shim (io.containerd.runc.v2) and ours
 * (io.containerd.ts.v2), on every selected containerd version: exact stdout/stderr, 64 MiB complete and in
 * order, stdin echo up to EOF, binary:// and file:// log URIs, attach / detach / re-attach.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
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
import { makeTempDir, removeDir, repoRoot, sleep, uniqueId, waitFor } from '../harness/util.js';

const IMG = DEFAULT_IMAGE;
const OURS: Runtime = 'io.containerd.ts.v2';
const short = (rt: Runtime) => (rt === OURS ? 'ts' : 'runc');
const LOGGER = join(repoRoot(), 'test', 'fixtures', 'binary-logger.sh');

async function cleanup(cd: Containerd, id: string): Promise<void> {
  await cd.ctr(['task', 'kill', '-a', '-s', 'SIGKILL', id], { allowFail: true });
  await waitFor(async () => !(await listTasks(cd)).some((t) => t.id === id && t.status === 'RUNNING'), 10_000, `${id} stopped`).catch(() => undefined);
  await cd.ctr(['task', 'rm', '-f', id], { allowFail: true });
  await cd.ctr(['container', 'rm', id], { allowFail: true });
}

/** ctr with its stdout handed to `onStdout` chunk by chunk (for outputs too big to keep as a string). */
function ctrStreaming(cd: Containerd, args: string[], onStdout: (chunk: Buffer) => void, timeoutMs = 180_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stdout.on('data', onStdout);
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: Buffer.concat(err).toString() });
    });
  });
}

/** Checks a stream of `seq 1 n` output incrementally: every line is the previous one plus 1. */
class SeqChecker {
  next = 1;
  bytes = 0;
  private partial = '';
  error: string | undefined;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.error) return;
    const lines = (this.partial + chunk.toString('latin1')).split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) {
      if (l !== String(this.next)) {
        this.error = `expected line ${this.next}, got ${JSON.stringify(l.slice(0, 40))}`;
        return;
      }
      this.next++;
    }
  }

  finish(): string {
    return this.error ?? (this.partial ? `unterminated last line ${JSON.stringify(this.partial.slice(0, 40))}` : '');
  }
}

/** Bytes of `seq 1 n`. */
function seqBytes(n: number): number {
  let total = 0;
  for (let digits = 1, lo = 1; lo <= n; digits++, lo *= 10) total += (Math.min(n, lo * 10 - 1) - lo + 1) * (digits + 1);
  return total;
}

interface Attached {
  child: ChildProcess;
  text(): string;
}

function attach(cd: Containerd, id: string): Attached {
  const child = spawn(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, 'task', 'attach', id], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.resume();
  return { child, text: () => Buffer.concat(out).toString() };
}

async function detach(a: Attached): Promise<void> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return;
  const closed = new Promise((resolve) => a.child.once('close', resolve));
  a.child.kill('SIGKILL'); // SIGTERM would be forwarded to the task by ctr
  await closed;
}

/** Complete lines as numbers (drops a trailing partial line). */
function numbers(text: string): number[] {
  const lines = text.split('\n');
  lines.pop();
  return lines.map((l) => Number(l));
}

for (const version of selectedVersions()) {
  describe(`stdio on containerd ${version}`, () => {
    let cd: Containerd;
    let tmp: string;
    before(async () => {
      cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
      await importImage(cd);
      tmp = await makeTempDir('io-');
    });
    after(async () => {
      await cd?.stop();
      if (tmp) await removeDir(tmp);
    });

    for (const rt of RUNTIMES) {
      test(`${short(rt)}: exact stdout and stderr, each in order`, async () => {
        const script = 'for i in $(seq 1 2000); do echo out$i; echo err$i >&2; done; printf tail-no-newline; printf err-tail >&2';
        const r = await cd.ctr(['run', '--rm', '--runtime', rt, IMG, uniqueId('oe'), 'sh', '-c', script], { allowFail: true });
        assert.equal(r.code, 0, r.stderr);
        const want = (p: string) => Array.from({ length: 2000 }, (_, i) => `${p}${i + 1}\n`).join('');
        assert.equal(r.stdout, want('out') + 'tail-no-newline');
        assert.equal(r.stderr, want('err') + 'err-tail');
      });

      test(`${short(rt)}: 64 MiB of stdout arrives complete and in order`, { timeout: 300_000 }, async (t) => {
        const n = 8_600_000; // seq 1 n is 67.7 MB
        const check = new SeqChecker();
        const r = await ctrStreaming(cd, ['run', '--rm', '--runtime', rt, IMG, uniqueId('big'), 'seq', '1', String(n)], (c) => check.push(c));
        assert.equal(r.code, 0, r.stderr);
        // The reference publishes the exit while output is still in flight; ctr then cancels its FIFO copy and
        // under load the tail is lost (seen on 1.6 and 1.7: 14 KB to 113 KB short). Ours holds the exit until the
        // client has read everything, so for ours any loss fails.
        if (rt !== OURS && check.bytes < seqBytes(n) && check.error === undefined) {
          t.diagnostic(`reference lost the tail: ${check.bytes} of ${seqBytes(n)} bytes, in order up to ${check.next - 1}`);
          return;
        }
        assert.equal(check.finish(), '');
        assert.equal(check.bytes, seqBytes(n));
        assert.ok(check.bytes >= 64 * 1024 * 1024);
        assert.equal(check.next, n + 1);
      });

      test(`${short(rt)}: stdin is echoed back, then EOF ends the process`, async () => {
        const id = uniqueId('in');
        const input = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}\n`).join('');
        const r = await cd.ctr(['run', '--rm', '--runtime', rt, IMG, id, 'sh', '-c', 'cat; echo EOF-seen'], {
          input,
          closeStdinAfter: () => waitTaskStatus(cd, id, 'RUNNING'),
          allowFail: true,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, input + 'EOF-seen\n');
      });

      test(`${short(rt)}: a binary:// logger receives all output, with only CONTAINER_ID/NAMESPACE set`, async () => {
        const id = uniqueId('bin');
        const dir = join(tmp, `bin-${short(rt)}`);
        const script = 'seq 1 30000; echo to-stderr >&2; seq 1 5 >&2';
        const r = await cd.ctr(['run', '--rm', '--runtime', rt, '--log-uri', `binary://${LOGGER}?dir=${dir}`, IMG, id, 'sh', '-c', script], { allowFail: true });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, '');
        // The logger finishes on pipe EOF, at the latest when the shim closes the pipes at Delete.
        await waitFor(async () => (await readdir(dir)).some((f) => f.startsWith('done.')), 20_000, 'logger done');
        const seq = (k: number) => Array.from({ length: k }, (_, i) => `${i + 1}\n`).join('');
        assert.equal(await readFile(join(dir, 'stdout'), 'utf8'), seq(30000));
        assert.equal(await readFile(join(dir, 'stderr'), 'utf8'), 'to-stderr\n' + seq(5));
        const envFile = (await readdir(dir)).find((f) => f.startsWith('env.'));
        const env = (await readFile(join(dir, envFile!), 'utf8')).split('\n').filter(Boolean);
        // sh adds PWD/SHLVL/... of its own; nothing of the shim's environment may leak through.
        assert.ok(env.includes(`CONTAINER_ID=${id}`), env.join(' '));
        assert.ok(env.includes(`CONTAINER_NAMESPACE=${cd.namespace}`), env.join(' '));
        assert.ok(!env.some((l) => l.startsWith('PATH=/') && l.includes('shimbin')), 'PATH of the shim leaked');
        assert.ok(!env.some((l) => l.startsWith('TTRPC_ADDRESS=') || l.startsWith('GOMAXPROCS=')), env.join(' '));
        const argsFile = (await readdir(dir)).find((f) => f.startsWith('args.'));
        assert.equal((await readFile(join(dir, argsFile!), 'utf8')).trim(), `dir ${dir}`);
      });

      test(`${short(rt)}: file:// output gets stdout and stderr in one file (parent dir created)`, async (t) => {
        const file = join(tmp, `file-${short(rt)}`, 'sub', 'out.log');
        const r = await cd.ctr(['run', '--rm', '--runtime', rt, '--log-uri', `file://${file}`, IMG, uniqueId('file'), 'sh', '-c', 'seq 1 1000; echo err-line >&2'], {
          allowFail: true,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, '');
        let problem = '';
        const text = await waitFor(async () => {
          const t = await readFile(file, 'utf8');
          return t.includes('err-line\n') && t.includes('1000\n') ? t : undefined;
        }, 10_000, 'file content').catch(async (err: Error) => {
          const got = await readFile(file, 'utf8').catch((e: Error) => e.message);
          problem = `${err.message}; ${got.length} chars, head ${JSON.stringify(got.slice(0, 40))}, tail ${JSON.stringify(got.slice(-40))}`;
          return got;
        });
        if (problem) {
          // The 1.6.20 reference sometimes loses stderr in file:// mode (seen: "err-line" missing in 1 of 8 runs).
          if (rt === OURS) assert.fail(problem);
          t.diagnostic(`reference lost output: ${problem}`);
          return;
        }
        const lines = text.split('\n').filter(Boolean);
        assert.deepEqual(lines.filter((l) => l !== 'err-line'), Array.from({ length: 1000 }, (_, i) => String(i + 1)));
        assert.equal(lines.filter((l) => l === 'err-line').length, 1);
      });

      test(`${short(rt)}: attach, detach, re-attach to a counter: it keeps running and continues`, async () => {
        const id = uniqueId('att');
        await cd.ctr(['run', '-d', '--runtime', rt, IMG, id, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done']);
        try {
          await waitTaskStatus(cd, id, 'RUNNING');
          const first = attach(cd, id);
          await waitFor(() => numbers(first.text()).length >= 20, 20_000, 'first attach sees the counter');
          await detach(first);
          const seen = numbers(first.text());
          const lastFirst = seen.at(-1)!;
          // Across one attach the counter is seen without gaps (the first line may be cut by the attach itself).
          const inner = seen.slice(1);
          inner.forEach((v, i) => i > 0 && assert.equal(v, inner[i - 1]! + 1, `gap in first attach at ${i}`));
          await sleep(500); // detached for a while: output waits in the FIFO, the container must not die
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
          const second = attach(cd, id);
          try {
            await waitFor(() => (numbers(second.text()).at(-1) ?? 0) > lastFirst + 20, 20_000, 're-attach sees the counter continue');
          } finally {
            await detach(second);
          }
          const again = numbers(second.text()).slice(1);
          assert.ok(again.length > 0);
          again.forEach((v, i) => i > 0 && assert.equal(v, again[i - 1]! + 1, `gap in second attach at ${i}`));
          assert.ok(again.at(-1)! > lastFirst);
          assert.equal((await listTasks(cd)).find((t) => t.id === id)?.status, 'RUNNING');
        } finally {
          await cleanup(cd, id);
        }
      });
    }
  });
}
