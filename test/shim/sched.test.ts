// A spare's scheduling (shim/platform/sched.ts): SCHED_IDLE on every thread while it starts up, then every
// thread back to SCHED_OTHER at the nice asked for. Run in a child process: the test process keeps its own.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const schedUrl = new URL('../../shim/platform/sched.js', import.meta.url).href;

test('background: every thread SCHED_IDLE; foreground(n): every thread SCHED_OTHER at nice n', { timeout: 30_000 }, async () => {
  // policy is field 41 and nice field 19 of /proc/<pid>/task/<tid>/stat (counted after the command's ")").
  const code = `
    import { readdirSync, readFileSync } from 'node:fs';
    import { background, foreground } from ${JSON.stringify(schedUrl)};
    const threads = () => readdirSync('/proc/self/task').map((tid) => {
      const f = readFileSync('/proc/self/task/' + tid + '/stat', 'latin1').split(') ')[1].split(' ');
      return { policy: Number(f[38]), nice: Number(f[16]) };
    });
    // Some threads must exist beside the main one: V8's platform workers, and libuv's pool once used.
    await import('node:fs/promises').then((fs) => fs.readFile('/proc/self/stat'));
    const out = { before: threads() };
    background();
    out.idle = threads();
    foreground(3);
    out.other = threads();
    foreground();
    out.zero = threads();
    console.log(JSON.stringify(out));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code]);
  const out = JSON.parse(stdout) as Record<'before' | 'idle' | 'other' | 'zero', { policy: number; nice: number }[]>;
  assert.ok(out.idle.length > 1, 'several threads');
  assert.ok(out.before.every((t) => t.policy === 0));
  assert.ok(out.idle.every((t) => t.policy === 5), JSON.stringify(out.idle));
  assert.ok(out.other.every((t) => t.policy === 0 && t.nice === 3), JSON.stringify(out.other));
  assert.ok(out.zero.every((t) => t.policy === 0 && t.nice === 0), JSON.stringify(out.zero));
});
