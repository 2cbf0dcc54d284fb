// containerd inside the test VM (pure cgroup v2): one boot runs the guest-side test file
// test/vm/guest/cgroup-v2.ts with node's test runner on containerd 1.6 and, when scripts/fetch-containerd.sh
// has fetched it into the (shared) checkout, 2.1: for each a container with our shim (dist/containerd-shim-ts-v2 of
// the shared checkout) and one with the reference runc shim: Stats (v2 Metrics against the cgroup files), Update
// (memory, cpu, pids in the cgroup files), pause/resume (cgroup.freeze). The guest's TAP output is checked case
// by case here. Gated like vm-smoke (test/harness/vm.ts vmTestSkip).
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
    'Update of memory, cpu and pids shows in the cgroup v2 files and Stats',
    'pause freezes the cgroup (cgroup.freeze), resume thaws it',
    'Stats answers v2 Metrics matching the cgroup files',
  ],
  timeoutMs: 10 * 60_000, // ~1.5 min idle, ~5 min beside a full host suite
});
