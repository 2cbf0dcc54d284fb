/**
 * The demo: starts a private containerd (own root, state and sockets in a temp dir), imports a busybox
 * image built from the host's busybox-static, and runs containers through our shim (io.containerd.ts.v2)
 * with the real `ctr`. Everything is removed at the end.
 *
 *   npm run demo            (or: bash examples/demo.sh on a fresh Debian machine)
 *   DEMO_CONTAINERD=2.1 npm run demo   (1.7 / 2.1 after scripts/fetch-containerd.sh)
 *   DEMO_ATTACH=1 npm run demo         (then keeps a shell container running for examples/attach, until it exits)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { startContainerd, shimBinDir, listTasks, waitTaskStatus, type Containerd, type ContainerdVersion } from '../test/harness/containerd.js';
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
    if (process.env.DEMO_ATTACH === '1') await shellForAttach(cd);
    step('done');
    if (run.code !== 7) throw new Error(`unexpected exit status ${run.code}: ${run.stderr}`);
  } catch (err) {
    process.stdout.write(`\ncontainerd log tail:\n${await cd.logTail(40)}\n`);
    throw err;
  } finally {
    await cd.stop();
  }
}

/**
 * A tty shell container left running for examples/attach (run from another terminal) until its shell exits or
 * ctrl-c here. `ctr run -t` needs a terminal, so this one runs on ours.
 */
async function shellForAttach(cd: Containerd): Promise<void> {
  if (!process.stdin.isTTY) throw new Error('DEMO_ATTACH=1 needs a terminal (ctr run -t)');
  step('a tty shell container for examples/attach');
  const ctr = spawn(cd.binaries.ctr, ['--address', cd.address, '--namespace', cd.namespace, 'run', '-d', '-t', '--runtime', RUNTIME, DEFAULT_IMAGE, 'demo-shell', 'sh'], {
    stdio: 'inherit',
  });
  const [code] = (await once(ctr, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`ctr run -d -t exited with ${code}`);
  process.stdout.write(
    `attach to it from another terminal (detach: ctrl-p ctrl-q; \`exit\` in the shell ends it and this demo):\n\n` +
      `  node dist/examples/attach.js --address ${cd.address} --namespace ${cd.namespace} demo-shell\n\n` +
      `waiting for the shell to exit (or ctrl-c here) ...\n`,
  );
  let interrupted = false;
  process.once('SIGINT', () => (interrupted = true)); // then clean up below instead of dying with containerd running
  while (!interrupted && (await listTasks(cd)).find((t) => t.id === 'demo-shell')?.status === 'RUNNING') {
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await cd.ctr(['task', 'kill', '-s', 'SIGKILL', 'demo-shell'], { allowFail: true });
  await waitTaskStatus(cd, 'demo-shell', 'STOPPED');
  await cd.ctr(['task', 'rm', 'demo-shell']);
  await cd.ctr(['container', 'rm', 'demo-shell']);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
