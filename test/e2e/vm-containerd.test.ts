// containerd inside the test VM (pure cgroup v2): one boot runs the guest-side test file
// test/vm/guest/cgroup-v2.ts with node's test runner on containerd 1.6 and, when scripts/fetch-containerd.sh
// has fetched it into the (shared) checkout, 2.1: for each a container with our shim (dist/containerd-shim-ts-v2 of
// the shared checkout) and one with the reference runc shim: Stats (v2 Metrics against the cgroup files), Update
// (memory, cpu, pids in the cgroup files), pause/resume (cgroup.freeze). The guest's TAP output is checked case
// by case here. Gated like vm-smoke (test/harness/vm.ts vmTestSkip).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { availableVersions } from '../harness/containerd.js';
import { guestSubtestBlock, runInVm, vmPrecheck, vmRequired, vmTestSkip, VmUnavailableError, type VmResult } from '../harness/vm.js';

const skip = vmTestSkip();
const GUEST_FILE = 'build/test/vm/guest/cgroup-v2.js';
/** The guest has containerd 1.6 itself and reads 1.7/2.1 from the shared checkout's .cache/containerd. */
const VERSIONS = availableVersions().filter((v) => v === '1.6' || v === '2.1');

describe(`test VM: containerd ${VERSIONS.join(' and ')} with both shims on cgroup v2`, { timeout: 45 * 60_000 }, () => {
  let result: VmResult | undefined;
  let unavailable: string | undefined;

  before(async () => {
    if (skip) return;
    const precheck = vmPrecheck();
    if (precheck !== undefined) throw new Error(`SHIM_TEST_VM=require but the VM cannot run here: ${precheck}`);
    try {
      // The checkout is read-only inside: the busybox image tarball is built under the guest's /tmp.
      result = await runInVm(`node --test --test-reporter=tap ${GUEST_FILE}`, {
        timeoutMs: 10 * 60_000, // ~1.5 min idle, ~5 min beside a full host suite: a guest that hangs must not hold CI
        env: { SHIM_TEST_IMAGE_CACHE: '/tmp/images', SHIM_TEST_CONTAINERD: VERSIONS.join(',') },
      });
      console.log(`# vm: boot ${result.bootMs} ms, boot + guest tests + power-off ${result.totalMs} ms (${result.accel})`);
      // The guest runner's diagnostics (pause retries, totals), which the host's report would not show otherwise.
      for (const l of result.stdout.split('\n')) if (/^\s*# (?!Subtest:)/.test(l)) console.log(`# vm guest:${l.replace(/^\s*#/, '')}`);
    } catch (err) {
      if (err instanceof VmUnavailableError && !vmRequired()) unavailable = err.message;
      else throw err;
    }
  });

  /** The guest file's cases, each run with both shims on every version. */
  const CASES = [
    'Update of memory, cpu and pids shows in the cgroup v2 files and Stats',
    'pause freezes the cgroup (cgroup.freeze), resume thaws it',
    'Stats answers v2 Metrics matching the cgroup files',
  ];
  for (const version of VERSIONS) {
    for (const shim of ['ts', 'runc']) {
      for (const what of CASES) {
        const name = `containerd ${version}, ${shim}: ${what}`;
        test(`${name} (in the VM)`, { skip }, (t) => {
          if (unavailable !== undefined) return t.skip(unavailable);
          assert.ok(result);
          const line = result.stdout.split('\n').find((l) => l.includes(`- ${name}`));
          const detail = `in the guest:\n${guestSubtestBlock(result.stdout, name)}\nguest stderr: ${result.stderr.slice(-1000)}`;
          assert.ok(line, `no result for "${name}"; guest output: ${result.stdout.slice(-4000)}`);
          assert.match(line, /^\s*ok \d+ /, detail);
          assert.doesNotMatch(line, /# SKIP/, detail);
        });
      }
    }
  }

  test('the guest test file passed as a whole', { skip }, (t) => {
    if (unavailable !== undefined) return t.skip(unavailable);
    assert.ok(result);
    assert.equal(result.status, 0, `guest output: ${result.stdout.slice(-4000)}\nstderr: ${result.stderr.slice(-2000)}`);
    assert.match(result.stdout, /^# fail 0$/m);
    assert.match(result.stdout, new RegExp(`^# pass ${VERSIONS.length * 2 * CASES.length}$`, 'm'));
  });
});
