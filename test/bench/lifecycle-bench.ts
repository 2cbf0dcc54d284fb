/**
 * Benchmark (not a test): container lifecycle latency and shim memory, ours against the reference, measured
 * in the same run on the same private containerd.
 *
 *   node build/test/bench/lifecycle-bench.js [runs=20] [containerd version=1.6]
 *
 * Prints, per runtime: median and p90 wall time of `ctr run --rm IMAGE ID true` (create + start + exit +
 * delete + shim start/exit), and the private memory (Private_Clean + Private_Dirty from smaps_rollup) and
 * RSS of one idle shim serving one running container; then the ratios ts / runc.
 */
import { readFile } from 'node:fs/promises';
import { RUNTIMES, shimBinDir, startContainerd, waitTaskStatus, type ContainerdVersion, type Runtime } from '../harness/containerd.js';
import { DEFAULT_IMAGE, importImage } from '../harness/image.js';
import { sleep, uniqueId } from '../harness/util.js';

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function memoryOf(pid: number): Promise<{ privateKb: number; rssKb: number }> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => parseInt(rollup.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? '0', 10);
  return { privateKb: field('Private_Clean') + field('Private_Dirty'), rssKb: field('Rss') };
}

async function main(): Promise<void> {
  const runs = parseInt(process.argv[2] ?? '20', 10);
  const version = (process.argv[3] ?? '1.6') as ContainerdVersion;
  const cd = await startContainerd({ version, shimDirs: [shimBinDir()] });
  const results: Record<string, { median: number; p90: number; privateKb: number; rssKb: number }> = {};
  try {
    await importImage(cd);
    const times: Record<Runtime, number[]> = { 'io.containerd.runc.v2': [], 'io.containerd.ts.v2': [] };
    for (let i = 0; i < runs + 2; i++) {
      // Alternate runtimes so that load changes hit both alike; the first two rounds are warm-up.
      for (const rt of RUNTIMES) {
        const t0 = performance.now();
        const r = await cd.ctr(['run', '--rm', '--runtime', rt, DEFAULT_IMAGE, uniqueId('b'), 'true'], { allowFail: true });
        const dt = performance.now() - t0;
        if (r.code !== 0) throw new Error(`${rt}: ctr run failed: ${r.stderr}`);
        if (i >= 2) times[rt].push(dt);
      }
    }
    for (const rt of RUNTIMES) {
      const id = uniqueId('mem');
      await cd.ctr(['run', '-d', '--runtime', rt, DEFAULT_IMAGE, id, 'sleep', '600']);
      await waitTaskStatus(cd, id, 'RUNNING');
      await sleep(2000);
      const shim = (await cd.shimProcesses())[0];
      if (!shim) throw new Error('no shim process found');
      const mem = await memoryOf(shim.pid);
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitTaskStatus(cd, id, 'STOPPED');
      await cd.ctr(['task', 'rm', id]);
      await cd.ctr(['container', 'rm', id]);
      results[rt] = { median: percentile(times[rt], 50), p90: percentile(times[rt], 90), ...mem };
    }
  } finally {
    await cd.stop();
  }
  const ts = results['io.containerd.ts.v2']!;
  const rc = results['io.containerd.runc.v2']!;
  for (const [rt, r] of Object.entries(results)) {
    console.log(`${rt.padEnd(22)} run --rm true: median ${r.median.toFixed(0)} ms, p90 ${r.p90.toFixed(0)} ms; idle shim: private ${(r.privateKb / 1024).toFixed(1)} MiB, RSS ${(r.rssKb / 1024).toFixed(1)} MiB`);
  }
  console.log(`ratio ts/runc: latency median ${(ts.median / rc.median).toFixed(2)}x, p90 ${(ts.p90 / rc.p90).toFixed(2)}x; private memory ${(ts.privateKb / rc.privateKb).toFixed(2)}x; RSS ${(ts.rssKb / rc.rssKb).toFixed(2)}x (containerd ${version}, ${runs} runs each)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
