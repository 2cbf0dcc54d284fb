// containerd inside the test VM (pure cgroup v2): one boot runs the guest-side test file
// test/vm/guest/cgroup-v2.ts with node's test runner on containerd 1.6 and, when scripts/fetch-containerd.sh
// has fetched it into the (shared) checkout, 2.1: on one containerd per version, a container with our shim
// (io.containerd.ts.v2, dist/containerd-shim-ts-v2 of the shared checkout) and one with the reference runc shim
// through their lifecycle on cgroup v2 (Stats as v2 Metrics against the cgroup files, Update of memory, cpu and
// pids in the cgroup files, pause/resume through cgroup.freeze, kill, the cgroup gone on delete), and an exec
// with a tty (size, resize, exit code). The guest's TAP output is checked case by case here. Gated like
// vm-smoke (test/harness/vm.ts vmTestSkip).
import { availableVersions } from '../harness/containerd.js';
import { describeGuestFile } from '../harness/vm-guest-file.js';

/** The guest has containerd 1.6 itself and reads 1.7/2.1 from the shared checkout's .cache/containerd. */
const VERSIONS = availableVersions().filter((v) => v === '1.6' || v === '2.1');

describeGuestFile({
  title: `test VM: containerd ${VERSIONS.join(' and ')} with both shims on cgroup v2`,
  guestFile: 'build/test/vm/guest/cgroup-v2.js',
  versions: VERSIONS,
  /** The guest file's cases, each run with both shims on every version. */
  cases: [
    'lifecycle on cgroup v2: Stats (v2 Metrics = the cgroup files), Update of memory, cpu, pids, pause/resume (cgroup.freeze), kill, delete',
    "ctr task exec -t: a tty of the client's size, resize, exit code",
  ],
  timeoutMs: 15 * 60_000,
});
