// Existing e2e files run unchanged INSIDE the test VM (pure cgroup v2, Debian's kernel 6.1), where what depends
// on the kernel or the cgroup version takes its v2 paths: one boot runs each file with node's test runner on
// containerd 1.6 and (when fetched into the shared checkout) 2.1, and each file must pass there as a whole.
// Which files: SHIM_TEST_VM_E2E (comma-separated names under test/e2e/, default `oom`: OOM through
// memory.events). Gated like vm-smoke (slow under TCG: in the VM the oom file takes ~1.5 min).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { availableVersions } from '../harness/containerd.js';
import { guestNodeTest, reportVmRun, runInVm, stallReport, vmPrecheck, vmRequired, vmTestSkip, VmUnavailableError, type VmResult } from '../harness/vm.js';

const skip = vmTestSkip();
const VERSIONS: string[] = availableVersions().filter((v) => v === '1.6' || v === '2.1');
/**
 * Which files, each on which containerd versions: `name` (every version below) or `name@2.1` (`+` between
 * several). Not checkpoint by default: its containerd part with a recorded or fake runc is the same on the host,
 * and a real CRIU checkpoint and restore through containerd 1.6 and 2.1, both shims, is in vm-shims
 * (`SHIM_TEST_VM_E2E=oom,checkpoint@2.1` adds it).
 */
const FILES = (process.env.SHIM_TEST_VM_E2E ?? 'oom')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((entry) => {
    const [name, at] = entry.split('@') as [string, string | undefined];
    const wanted = at ? at.split('+') : VERSIONS;
    const versions = VERSIONS.filter((v) => wanted.includes(v));
    return { name, versions: versions.length > 0 ? versions : VERSIONS };
  });
interface FileRun {
  tap: string;
  status: number;
}

/** Splits the guest's output into each file's TAP and exit status (`@@file name` … `@@status name <n>`). */
function parseRuns(stdout: string): Map<string, FileRun> {
  const runs = new Map<string, FileRun>();
  for (const m of stdout.matchAll(/^@@file (\S+)\n([\s\S]*?)^@@status \1 (\d+)$/gm)) runs.set(m[1]!, { tap: m[2]!, status: Number(m[3]) });
  return runs;
}

describe(`test VM: e2e files on cgroup v2 (${FILES.map((f) => f.name).join(', ')})`, { timeout: 60 * 60_000 }, () => {
  let result: VmResult | undefined;
  let runs = new Map<string, FileRun>();
  let unavailable: string | undefined;

  before(async () => {
    if (skip) return;
    const precheck = vmPrecheck();
    if (precheck !== undefined) throw new Error(`SHIM_TEST_VM=require but the VM cannot run here: ${precheck}`);
    const script = FILES.map(
      (f) => `echo "@@file ${f.name}"; SHIM_TEST_CONTAINERD=${f.versions.join(',')} ${guestNodeTest(`build/test/e2e/${f.name}.test.js`)} 2>&1; echo "@@status ${f.name} $?"`,
    ).join('\n');
    try {
      // The checkout is read-only inside: image tarballs are built under the guest's /tmp.
      result = await runInVm(script, {
        timeoutMs: 15 * 60_000, // a guest that hangs must not hold CI
        env: { SHIM_TEST_IMAGE_CACHE: '/tmp/images', SHIM_TEST_CONTAINERD: VERSIONS.join(',') },
      });
      runs = parseRuns(result.stdout);
      reportVmRun(result, `${FILES.length} file(s)`);
    } catch (err) {
      if (err instanceof VmUnavailableError && !vmRequired()) unavailable = err.message;
      else throw err;
    }
  });

  for (const { name: file, versions } of FILES) {
    test(`e2e/${file} passes in the VM (containerd ${versions.join(', ')})`, { skip }, (t) => {
      if (unavailable !== undefined) return t.skip(unavailable);
      assert.ok(result);
      const run = runs.get(file);
      assert.ok(run, `no run of ${file}; guest output: ${result.stdout.slice(-3000)}; stderr: ${result.stderr.slice(-1000)}`);
      const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(run.tap)?.[1] ?? NaN);
      const failed = run.tap.split('\n').filter((l) => /^\s*not ok /.test(l));
      t.diagnostic(`${file} in the VM: pass ${count('pass')}, fail ${count('fail')}, skipped ${count('skipped')}`);
      assert.deepEqual(failed, [], `failed in the VM:\n${run.tap.slice(-6000)}`);
      assert.equal(run.status, 0, `${run.tap.slice(-6000)}\n${stallReport(result.console)}`);
      assert.equal(count('fail'), 0);
      assert.ok(count('pass') > 0, `nothing passed: ${run.tap.slice(-3000)}`);
    });
  }
});
