/**
 * A host test file for a guest-side test file (test/vm/guest/*.ts): one boot runs it with node's test runner on
 * the given containerd versions, and each of its cases (run with both shims on every version) becomes a host
 * test checked against the guest's TAP output, plus one for the file as a whole. Gated like every VM file.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { guestNodeTest, guestSubtestBlock, reportVmRun, runInVm, stallReport, vmPrecheck, vmRequired, vmTestSkip, VmUnavailableError, type VmResult } from './vm.js';

export interface GuestFileOptions {
  readonly title: string;
  /** Built guest file, relative to the checkout (e.g. build/test/vm/guest/shims.js). */
  readonly guestFile: string;
  readonly versions: readonly string[];
  /** The guest file's case names, without the `containerd V, shim: ` prefix. */
  readonly cases: readonly string[];
  /** Bound of the guest run: a guest that hangs fails this file instead of holding the whole run. */
  readonly timeoutMs: number;
}

export function describeGuestFile(o: GuestFileOptions): void {
  const skip = vmTestSkip();
  describe(o.title, { timeout: 45 * 60_000 }, () => {
    let result: VmResult | undefined;
    let unavailable: string | undefined;

    before(async () => {
      if (skip) return;
      const precheck = vmPrecheck();
      if (precheck !== undefined) throw new Error(`SHIM_TEST_VM=require but the VM cannot run here: ${precheck}`);
      try {
        // The checkout is read-only inside: the busybox image tarball is built under the guest's /tmp.
        result = await runInVm(guestNodeTest(o.guestFile), {
          timeoutMs: o.timeoutMs,
          env: { SHIM_TEST_IMAGE_CACHE: '/tmp/images', SHIM_TEST_CONTAINERD: o.versions.join(',') },
        });
        reportVmRun(result, 'guest tests');
        // The guest runner's diagnostics, which the host's report would not show otherwise.
        for (const l of result.stdout.split('\n')) if (/^\s*# (?!Subtest:)/.test(l)) console.log(`# vm guest:${l.replace(/^\s*#/, '')}`);
      } catch (err) {
        if (err instanceof VmUnavailableError && !vmRequired()) unavailable = err.message;
        else throw err;
      }
    });

    for (const version of o.versions) {
      for (const shim of ['ts', 'runc']) {
        for (const what of o.cases) {
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
      assert.equal(result.status, 0, `guest output: ${result.stdout.slice(-5000)}\nstderr: ${result.stderr.slice(-2000)}\n${stallReport(result.console)}`);
      assert.match(result.stdout, /^# fail 0$/m);
      assert.match(result.stdout, new RegExp(`^# pass ${o.versions.length * 2 * o.cases.length}$`, 'm'));
    });
  });
}
