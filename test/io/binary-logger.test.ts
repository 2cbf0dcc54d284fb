import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { childProcessSpawner } from '../../io/binary-logger.js';
import { createProcessIO } from '../../io/process-io.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// A logging plugin: records env, fd kinds, both streams; ready (closes fd 5) after 300 ms; SIGTERM noted.
const LOGGER = `#!/bin/sh
dir=$2
tr '\\0' '\\n' < /proc/$$/environ > $dir/env
fds=$(for n in 0 1 2 3 4 5; do echo "$n $(readlink /proc/$$/fd/$n)"; done)
echo "$fds" > $dir/fds
echo "$@" > $dir/args
trap 'echo term > $dir/term; exit 0' TERM
cat <&3 > $dir/out 5>&- &
cat <&4 > $dir/err 5>&- &
sleep 0.3
touch $dir/ready
exec 5>&-
wait
touch $dir/eof
while :; do sleep 0.05; done
`;

async function setup(): Promise<{ dir: string; uri: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'io-binlog-'));
  dirs.push(dir);
  const script = join(dir, 'logger.sh');
  await writeFile(script, LOGGER);
  await chmod(script, 0o755);
  return { dir, uri: `binary://${script}?dir=${encodeURIComponent(dir)}&--flag` };
}

const exists = (p: string) => stat(p).then(() => true, () => false);

test('binary:// logger: env, fds, readiness, all output, SIGTERM at close', async () => {
  const { dir, uri } = await setup();
  const pids: number[] = [];
  const io = await createProcessIO(
    { stdin: '', stdout: uri, stderr: uri, terminal: false },
    { id: 'exec-7', namespace: 'ns1', uid: 0, gid: 0, logger, spawnLogger: childProcessSpawner((pid) => pids.push(pid)) },
  );
  try {
    assert.equal(await exists(join(dir, 'ready')), true, 'createProcessIO waits for readiness');
    assert.equal(pids.length, 1, 'pid reported through the callback');
    assert.deepEqual(io.runtime.stdio.slice(0, 1), ['ignore']);
    const child = spawn('sh', ['-c', 'i=1; while [ $i -le 3000 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done'], { stdio: io.runtime.stdio });
    io.afterSpawn();
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    await io.start(AbortSignal.timeout(5000));
    assert.equal(await io.drained(1000), true);
    for (let i = 0; i < 500 && !(await exists(join(dir, 'eof'))); i++) await sleep(20);
    assert.equal(await exists(join(dir, 'eof')), true, 'logger saw EOF after the container closed its output');
  } finally {
    await io.close();
  }
  const lines = (p: string) => Array.from({ length: 3000 }, (_, i) => `${p}${i + 1}\n`).join('');
  assert.equal(await readFile(join(dir, 'out'), 'utf8'), lines('o'));
  assert.equal(await readFile(join(dir, 'err'), 'utf8'), lines('e'));
  const env = (await readFile(join(dir, 'env'), 'utf8')).trim().split('\n').sort();
  assert.deepEqual(env, ['CONTAINER_ID=exec-7', 'CONTAINER_NAMESPACE=ns1']);
  assert.equal((await readFile(join(dir, 'args'), 'utf8')).trim(), `dir ${dir} --flag`);
  const fds = await readFile(join(dir, 'fds'), 'utf8');
  assert.match(fds, /^0 \/dev\/null$/m);
  assert.match(fds, /^1 \/dev\/null$/m);
  assert.match(fds, /^2 \/dev\/null$/m);
  assert.match(fds, /^3 pipe:/m);
  assert.match(fds, /^4 pipe:/m);
  assert.match(fds, /^5 pipe:/m);
  assert.equal((await readFile(join(dir, 'term'), 'utf8')).trim(), 'term');
});

test('binary:// logger that ignores SIGTERM is killed after the timeout; a missing binary fails', async () => {
  const { dir } = await setup();
  const script = join(dir, 'stubborn.sh');
  await writeFile(script, '#!/bin/sh\ntrap "" TERM\nexec 5>&-\nwhile :; do sleep 0.05; done\n');
  await chmod(script, 0o755);
  const { BinaryLogger } = await import('../../io/binary-logger.js');
  const bl = await BinaryLogger.start(
    { path: script, args: [] },
    { id: 'c', namespace: 'n', logger, spawnLogger: childProcessSpawner(), readyTimeoutMs: 5000 },
  );
  const t0 = Date.now();
  await bl.close(500);
  assert.ok(Date.now() - t0 >= 400, 'waited for SIGTERM first');
  assert.throws(() => process.kill(bl.process.pid, 0), /ESRCH/);
  await assert.rejects(
    createProcessIO({ stdin: '', stdout: `binary://${dir}/nope`, stderr: '', terminal: false }, { id: 'c', namespace: 'n', uid: 0, gid: 0, logger }),
    /failed to start binary process/,
  );
});
