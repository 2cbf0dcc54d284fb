/**
 * The demo: starts a private containerd (own root, state and sockets in a temp dir), imports a busybox
 * image built from the host's busybox-static, and runs containers through our shim (io.containerd.ts.v2)
 * with the real `ctr`. Everything is removed at the end.
 *
 *   npm run demo            (or: bash examples/demo.sh on a fresh Debian machine)
 *   DEMO_CONTAINERD=2.1 npm run demo   (1.7 / 2.1 after scripts/fetch-containerd.sh)
 */
import { startContainerd, shimBinDir, waitTaskStatus, type ContainerdVersion } from '../test/harness/containerd.js';
import { importImage, DEFAULT_IMAGE } from '../test/harness/image.js';

const RUNTIME = 'io.containerd.ts.v2';

function step(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

async function main(): Promise<void> {
  const version = (process.env.DEMO_CONTAINERD ?? '1.6') as ContainerdVersion;
  step(`starting a private containerd ${version}`);
  const cd = await startContainerd({ version, shimDirs: [shimBinDir()], namespace: 'demo' });
  process.stdout.write(`containerd ${cd.serverVersion} at ${cd.address}\n`);
  try {
    step(`importing ${DEFAULT_IMAGE} (built from /usr/bin/busybox)`);
    await importImage(cd);

    step(`ctr run --rm --runtime ${RUNTIME} ... (a container through our shim)`);
    const run = await cd.ctr(
      ['run', '--rm', '--runtime', RUNTIME, DEFAULT_IMAGE, 'demo-hello', 'sh', '-c', 'echo "hello from a container run by containerd-shim-ts"; echo "pid 1 is: $(cat /proc/1/comm)"; exit 7'],
      { allowFail: true },
    );
    process.stdout.write(run.stdout);
    process.stdout.write(`exit status: ${run.code} (expected 7)\n`);

    step('a detached container: task ls, exec, kill');
    await cd.ctr(['run', '-d', '--runtime', RUNTIME, DEFAULT_IMAGE, 'demo-sleeper', 'sleep', '600']);
    process.stdout.write((await cd.ctr(['task', 'ls'])).stdout);
    const exec = await cd.ctr(['task', 'exec', '--exec-id', 'e1', 'demo-sleeper', 'sh', '-c', 'echo "exec sees: $(ps | wc -l) lines of ps"']);
    process.stdout.write(exec.stdout);
    await cd.ctr(['task', 'kill', '-s', 'SIGKILL', 'demo-sleeper']);
    await waitTaskStatus(cd, 'demo-sleeper', 'STOPPED');
    process.stdout.write((await cd.ctr(['task', 'ls'])).stdout);
    await cd.ctr(['task', 'rm', 'demo-sleeper']);
    await cd.ctr(['container', 'rm', 'demo-sleeper']);
    process.stdout.write(`shims left running: ${(await cd.shimProcesses()).length}\n`);
    step('done');
    if (run.code !== 7) throw new Error(`unexpected exit status ${run.code}: ${run.stderr}`);
  } catch (err) {
    process.stdout.write(`\ncontainerd log tail:\n${await cd.logTail(40)}\n`);
    throw err;
  } finally {
    await cd.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
