// Both shims as io.containerd.runc.v2 inside the test VM (pure cgroup v2, a kernel CRIU works on): one boot runs
// the guest-side file test/vm/guest/shims.ts on containerd 1.6 and, when scripts/fetch-containerd.sh has fetched
// it into the (shared) checkout, 2.1: crun through binary_name (lifecycle, exec, pause/resume, Update, Stats),
// a real CRIU checkpoint left running and restored into a new
// container with its memory (/tasks/checkpointed), and shim_cgroup with the controllers of the container's
// cgroup. The guest's TAP output is checked case by case here. Gated like vm-smoke (test/harness/vm.ts).
import { availableVersions } from '../harness/containerd.js';
import { describeGuestFile } from '../harness/vm-guest-file.js';

/** The guest has containerd 1.6 itself and reads 2.1 from the shared checkout's .cache/containerd. */
const VERSIONS = availableVersions().filter((v) => v === '1.6' || v === '2.1');

describeGuestFile({
  title: `test VM: crun, CRIU, shim_cgroup on containerd ${VERSIONS.join(' and ')}, both shims`,
  guestFile: 'build/test/vm/guest/shims.js',
  versions: VERSIONS,
  /** The guest file's cases, each run with both shims on every version. */
  cases: [
    'crun via binary_name: run, exec, pause/resume, Update, Stats, kill',
    'real checkpoint (--leave-running, /tasks/checkpointed), restore into a new container with its memory',
    "shim_cgroup: the daemon joins it; the container's cgroup gets every root controller",
  ],
  timeoutMs: 20 * 60_000, // ~5 min idle, ~10 beside a full host suite
});
