// Both shims as io.containerd.runc.v2 inside the test VM (pure cgroup v2, a kernel CRIU works on): one boot runs
// the guest-side file test/vm/guest/shims.ts on containerd 1.6 and, when scripts/fetch-containerd.sh has fetched
// it into the (shared) checkout, 2.1: crun through binary_name (lifecycle, exec, pause/resume, Update, Stats),
// an exec with a tty (size, resize, exit code), a real CRIU checkpoint left running and restored into a new
// container with its memory (/tasks/checkpointed), and shim_cgroup with the controllers of the container's
// cgroup. The guest's TAP output is checked case by case here. Gated like vm-smoke (test/harness/vm.ts).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { availableVersions } from '../harness/containerd.js';
import { guestSubtestBlock, runInVm, vmPrecheck, vmRequired, vmTestSkip, VmUnavailableError, type VmResult } from '../harness/vm.js';

const skip = vmTestSkip();
const GUEST_FILE = 'build/test/vm/guest/shims.js';
/** The guest has containerd 1.6 itself and reads 2.1 from the shared checkout's .cache/containerd. */
const VERSIONS = availableVersions().filter((v) => v === '1.6' || v === '2.1');

/** The guest file's cases, each run with both shims on every version. */
const CASES = [
  'crun via binary_name: run, exec, pause/resume, Update, Stats, kill',
  "ctr task exec -t: a tty of the client's size, resize, exit code",
  'real checkpoint (--leave-running, /tasks/checkpointed), restore into a new container with its memory',
  "shim_cgroup: the daemon joins it; the container's cgroup gets every root controller",
];

describe(`test VM: crun, tty exec, CRIU, shim_cgroup on containerd ${VERSIONS.join(' and ')}, both shims`, { timeout: 45 * 60_000 }, () => {
  let result: VmResult | undefined;
  let unavailable: string | undefined;

  before(async () => {
    if (skip) return;
    const precheck = vmPrecheck();
    if (precheck !== undefined) throw new Error(`SHIM_TEST_VM=require but the VM cannot run here: ${precheck}`);
    try {
      // The checkout is read-only inside: the busybox image tarball is built under the guest's /tmp.
      result = await runInVm(`node --test --test-reporter=tap ${GUEST_FILE}`, {
        timeoutMs: 20 * 60_000, // ~5 min idle, ~10 beside a full host suite: a guest that hangs must not hold CI
        env: { SHIM_TEST_IMAGE_CACHE: '/tmp/images', SHIM_TEST_CONTAINERD: VERSIONS.join(',') },
      });
      console.log(`# vm: boot ${result.bootMs} ms, boot + guest tests + power-off ${result.totalMs} ms (${result.accel})`);
      // The guest runner's diagnostics (what each case saw, totals), which the host's report would not show otherwise.
      for (const l of result.stdout.split('\n')) if (/^\s*# (?!Subtest:)/.test(l)) console.log(`# vm guest:${l.replace(/^\s*#/, '')}`);
    } catch (err) {
      if (err instanceof VmUnavailableError && !vmRequired()) unavailable = err.message;
      else throw err;
    }
  });

  for (const version of VERSIONS) {
    for (const shim of ['ts', 'runc']) {
      for (const what of CASES) {
        const name = `containerd ${version}, ${shim}: ${what}`;
        test(`${name} (in the VM)`, { skip }, (t) => {
          if (unavailable !== undefined) return t.skip(unavailable);
          assert.ok(result);
          const line = result.stdout.split('\n').find((l) => l.includes(`- ${name}`));
          const detail = `in the guest:\n${guestSubtestBlock(result.stdout, name)}\nguest stderr: ${result.stderr.slice(-1000)}`;
          assert.ok(line, `no result for "${name}"; guest output: ${result.stdout.slice(-5000)}`);
          assert.match(line, /^\s*ok \d+ /, detail);
          assert.doesNotMatch(line, /# SKIP/, detail);
        });
      }
    }
  }

  test('the guest test file passed as a whole', { skip }, (t) => {
    if (unavailable !== undefined) return t.skip(unavailable);
    assert.ok(result);
    assert.equal(result.status, 0, `guest output: ${result.stdout.slice(-5000)}\nstderr: ${result.stderr.slice(-2000)}`);
    assert.match(result.stdout, /^# fail 0$/m);
    assert.match(result.stdout, new RegExp(`^# pass ${VERSIONS.length * 2 * CASES.length}$`, 'm'));
  });
});
