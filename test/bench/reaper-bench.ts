// Reaper benchmark (not a test): exits collected per second, per drain strategy. No container, no containerd:
// kept apart from bench.ts, which runs it as its optional section `reaper` (`npm run bench -- reaper`).
//   node build/test/bench/reaper-bench.js [N]            runs every strategy, each in its own process
//   node build/test/bench/reaper-bench.js N peek|scan    one strategy in this process
// Prints: spawn cost with and without the setpriv parent-death wrapper; a burst of N orphans released at
// once; N orphans exiting over ~1 s while N child_process runs go on (4 at a time); cost per drain.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Reaper } from '../../reaper/reaper.js';
import { expectNoZombies, launch, orphanLine } from '../reaper/helpers.js';

type Strategy = 'peek' | 'scan';

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

function summary(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return `min ${at(0).toFixed(2)} ms, median ${at(0.5).toFixed(2)} ms`;
}

async function spawnCost(reaper: Reaper, runs: number): Promise<void> {
  for (const pdeath of [false, true, false, true]) {
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await reaper.run('/bin/true', [], { parentDeathSignal: pdeath });
      samples.push(ms(t0));
    }
    console.log(`  run(/bin/true) ${pdeath ? 'with setpriv --pdeathsig' : 'plain                  '}: ${summary(samples)}`);
  }
}

function drainLine(reaper: Reaper, before: ReturnType<Reaper['stats']>): string {
  const after = reaper.stats();
  const drains = after.drains - before.drains;
  const d = Math.max(1, drains);
  const wall = (after.drainNs - before.drainNs) / 1e3;
  const cpu = after.drainCpuUs - before.drainCpuUs;
  const reaped = after.reaped - before.reaped;
  return (
    `${drains} drains (${after.scans - before.scans} with a children scan), per drain ${(wall / d).toFixed(0)} µs wall / ` +
    `${(cpu / d).toFixed(0)} µs cpu, cpu per reaped exit ${(cpu / Math.max(1, reaped)).toFixed(1)} µs`
  );
}

async function burst(reaper: Reaper, n: number): Promise<void> {
  const lines = Array.from({ length: n }, (_, i) => orphanLine(`read _ <&3; exit ${i % 256}`));
  const { pids, release } = await launch(reaper, lines.join('\n'));
  const watched = Promise.all(pids.map((pid) => reaper.watch(pid)));
  const before = reaper.stats();
  const t0 = process.hrtime.bigint();
  await release();
  const exits = await watched;
  const elapsed = ms(t0);
  const wrong = exits.filter((e, i) => e.status !== i % 256).length;
  console.log(
    `  burst: ${n} orphans released at once, all collected in ${elapsed.toFixed(0)} ms = ` +
      `${Math.round((n / elapsed) * 1000)} exits/s; wrong statuses ${wrong}; ${drainLine(reaper, before)}`,
  );
}

async function mixed(reaper: Reaper, n: number): Promise<void> {
  const lines = Array.from({ length: n }, (_, i) =>
    orphanLine(`read _ <&3; sleep ${((i % 100) / 100).toFixed(2)}; exit ${i % 256}`),
  );
  const { pids, release } = await launch(reaper, lines.join('\n'));
  const watched = Promise.all(pids.map((pid) => reaper.watch(pid)));
  const before = reaper.stats();
  const t0 = process.hrtime.bigint();
  await release();
  let next = 0;
  let wrongRuns = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const code = (i * 13) % 256;
      if (i % 2 === 0) {
        const r = await reaper.run('sh', ['-c', `exit ${code}`]);
        if (r.exit.status !== code) wrongRuns++;
      } else {
        const got = await new Promise<number>((resolve) =>
          execFile('sh', ['-c', `exit ${code}`], (err) => resolve(err ? Number((err as { code?: unknown }).code) : 0)),
        );
        if (got !== code) wrongRuns++;
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const exits = await watched;
  const elapsed = ms(t0);
  const wrong = exits.filter((e, i) => e.status !== i % 256).length;
  console.log(
    `  mixed: ${n} orphans + ${n} child_process runs in ${elapsed.toFixed(0)} ms = ` +
      `${Math.round(((2 * n) / elapsed) * 1000)} exits/s; wrong statuses ${wrong + wrongRuns}; ${drainLine(reaper, before)}`,
  );
}

async function one(n: number, strategy: Strategy): Promise<void> {
  const reaper = Reaper.start({ strategy });
  console.log(`strategy ${strategy === 'peek' ? 'peek (waitid P_ALL WNOWAIT, children scan on a libuv zombie)' : 'scan (children list every drain)'}:`);
  if (strategy === 'peek') await spawnCost(reaper, 50);
  for (let round = 0; round < 2; round++) await burst(reaper, n);
  await mixed(reaper, Math.min(n, 200));
  await expectNoZombies();
  reaper.stop();
}

async function all(n: number): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  for (const strategy of ['peek', 'scan'] as const) {
    await new Promise<void>((resolve, reject) => {
      const child = execFile(process.execPath, [self, String(n), strategy], (err) => (err ? reject(err) : resolve()));
      child.stdout?.pipe(process.stdout);
      child.stderr?.pipe(process.stderr);
    });
  }
}

const n = Number(process.argv[2] ?? 500);
const strategy = process.argv[3];
if (strategy === 'peek' || strategy === 'scan') await one(n, strategy);
else await all(n);
