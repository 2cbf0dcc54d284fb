/**
 * Docker on our shim: a private dockerd (test/harness/docker.ts) on a private containerd, driven by the docker
 * CLI of the same version. dockerd 20.10 (Debian 12) runs io.containerd.runc.v2 tasks and gets our shim as a
 * drop-in (`containerd-shim-runc-v2` first in containerd's PATH); dockerd 28 (Debian sid) names it in
 * daemon.json (`runtimes: {ts: {runtimeType: io.containerd.ts.v2}}`, `docker run --runtime ts`) next to the
 * reference (`--runtime runc`). Images are loaded with `docker load`, never pulled; containers have no network.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { shimBinDir, startContainerd, type Containerd } from '../harness/containerd.js';
import { containerdFor, dropInShimDir, selectedDockerVersions, startDockerd, type Dockerd, type DockerVersion } from '../harness/docker.js';
import { uniqueId } from '../harness/util.js';

const TIMEOUT = { timeout: 180_000 };

interface Setup {
  cd: Containerd;
  dockerd: Dockerd;
  image: string;
  /** `docker run` flags that put a container on our shim. */
  runtimeArgs: string[];
}

async function setUp(version: DockerVersion): Promise<Setup> {
  const cd = await startContainerd({
    version: containerdFor(version),
    shimDirs: version === '20.10' ? [dropInShimDir(), shimBinDir()] : [shimBinDir()],
  });
  try {
    const dockerd = await startDockerd({
      version,
      containerd: cd,
      runtimes: version === '20.10' ? undefined : { ts: { runtimeType: 'io.containerd.ts.v2' } },
    });
    const image = await dockerd.loadImage();
    return { cd, dockerd, image, runtimeArgs: version === '20.10' ? [] : ['--runtime', 'ts'] };
  } catch (err) {
    await cd.stop().catch(() => undefined);
    throw err;
  }
}

for (const version of selectedDockerVersions()) {
  describe(`docker ${version} on our shim`, () => {
    let s: Setup;
    before(async () => {
      s = await setUp(version);
    });
    after(async () => {
      try {
        await s?.dockerd.stop();
      } finally {
        await s?.cd.stop();
      }
    });

    const run = (args: string[], opts = {}) => s.dockerd.docker(['run', '--network', 'none', ...s.runtimeArgs, ...args], opts);

    test('run: output and exit code', TIMEOUT, async () => {
      const name = uniqueId('run');
      const r = await run(['--name', name, s.image, 'sh', '-c', 'echo hello; exit 7'], { allowFail: true });
      assert.equal(r.code, 7, r.stderr);
      assert.equal(r.stdout, 'hello\n');
      const code = await s.dockerd.docker(['inspect', '-f', '{{.State.ExitCode}}', name]);
      assert.equal(code.stdout.trim(), '7');
      await s.dockerd.docker(['rm', name]);
    });
  });
}
