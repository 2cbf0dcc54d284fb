// Smoke test of the test VM (test/harness/vm.ts): one boot of the Debian 12 guest runs every check below and the
// assertions read its output. Inside: pure cgroup v2 with memory/pids/cpu usable by a child cgroup, `criu check`,
// runc and crun, the checkout read-only at the host's path, and node running this build (the shim's -v, a unit
// test file). Slow under TCG (image build ~40 s once, boot ~10-15 s): it runs with SHIM_TEST_VM=1, which
// scripts/run-tests.mjs sets where qemu is on PATH and we are root (SHIM_TEST_VM=0: off; SHIM_TEST_VM=require:
// a VM that cannot run here fails the test instead of skipping it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import { chooseAccel, reportVmRun, runInVm, vmImage, vmPrecheck, vmRequired, vmTestSkip, VmUnavailableError, type VmResult } from '../harness/vm.js';
import { repoRoot } from '../harness/util.js';

const skip = vmTestSkip();
const required = vmRequired();

/** Each check prints its output between markers with its exit status: `@@begin name` … `@@end name <status>`. */
const SCRIPT = String.raw`
check() { name=$1; shift; echo "@@begin $name"; "$@" 2>&1; echo "@@end $name $?"; }
check kernel uname -r
check fstype stat -f -c %T /sys/fs/cgroup
check v1mounts sh -c 'grep -c " cgroup " /proc/mounts'
check controllers cat /sys/fs/cgroup/cgroup.controllers
check subtree cat /sys/fs/cgroup/cgroup.subtree_control
check child sh -c 'mkdir /sys/fs/cgroup/smoke && cat /sys/fs/cgroup/smoke/cgroup.controllers &&
  echo 64M >/sys/fs/cgroup/smoke/memory.max && echo 100 >/sys/fs/cgroup/smoke/pids.max &&
  echo "50000 100000" >/sys/fs/cgroup/smoke/cpu.max && echo $$ >/sys/fs/cgroup/smoke/cgroup.procs &&
  echo "memory.max $(cat /sys/fs/cgroup/smoke/memory.max)" && echo "pids.max $(cat /sys/fs/cgroup/smoke/pids.max)" &&
  echo "cpu.max $(cat /sys/fs/cgroup/smoke/cpu.max)" && echo "self $(cat /proc/self/cgroup)"'
check criu criu check
check runc runc --version
check crun crun --version
check readonly sh -c 'touch .vm-write-probe'
check node node -v
check shim ./dist/containerd-shim-ts-v2 -v
check unit node --test --test-reporter=tap build/test/cgroup/parse.test.js
echo @@done
`;

interface Check {
  out: string;
  status: number;
}

function parseChecks(stdout: string): Map<string, Check> {
  const checks = new Map<string, Check>();
  const re = /^@@begin (\S+)\n([\s\S]*?)^@@end \1 (\d+)$/gm;
  for (const m of stdout.matchAll(re)) checks.set(m[1]!, { out: m[2]!, status: Number(m[3]) });
  return checks;
}

describe('test VM: Debian 12 guest, pure cgroup v2', { timeout: 45 * 60_000 }, () => {
  let result: VmResult | undefined;
  let checks = new Map<string, Check>();
  let unavailable: string | undefined;

  before(async () => {
    if (skip) return;
    const precheck = vmPrecheck();
    if (precheck !== undefined) throw new Error(`SHIM_TEST_VM=require but the VM cannot run here: ${precheck}`);
    try {
      const t0 = Date.now();
      const image = await vmImage();
      const imageMs = Date.now() - t0;
      result = await runInVm(SCRIPT, { timeoutMs: 10 * 60_000 });
      const accel = chooseAccel();
      console.log(`# vm: image ${image} ready in ${imageMs} ms; ${accel.accel} (${accel.why})`);
      reportVmRun(result, 'checks');
      checks = parseChecks(result.stdout);
    } catch (err) {
      if (err instanceof VmUnavailableError && !required) unavailable = err.message;
      else throw err;
    }
  });

  /** The named check's output, after asserting it ran; skips the test when the VM could not run here. */
  function ran(t: TestContext, name: string): Check | undefined {
    if (unavailable !== undefined) {
      t.skip(unavailable);
      return undefined;
    }
    const c = checks.get(name);
    assert.ok(c, `check ${name} did not run; stdout: ${result?.stdout.slice(-2000)}; stderr: ${result?.stderr.slice(-2000)}`);
    return c;
  }

  test('the command ran to its end and the VM powered off with its status', { skip }, (t) => {
    if (unavailable !== undefined) return t.skip(unavailable);
    assert.ok(result);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^@@done$/m);
    assert.match(result.console, /reboot: Power down/);
    assert.match(ran(t, 'kernel')!.out, /^6\.1\.\d+-\d+-amd64$/m, 'Debian 12 kernel');
  });

  test('cgroup2fs at /sys/fs/cgroup, no cgroup v1 mounted', { skip }, (t) => {
    const fstype = ran(t, 'fstype');
    if (!fstype) return;
    assert.equal(fstype.out.trim(), 'cgroup2fs');
    assert.equal(ran(t, 'v1mounts')!.out.trim(), '0');
  });

  test('memory, pids and cpu controllers available, enabled for children and usable in a child cgroup', { skip }, (t) => {
    const controllers = ran(t, 'controllers');
    if (!controllers) return;
    const words = (s: string) => s.trim().split(/\s+/);
    for (const c of ['memory', 'pids', 'cpu']) {
      assert.ok(words(controllers.out).includes(c), `${c} in cgroup.controllers: ${controllers.out}`);
      assert.ok(words(ran(t, 'subtree')!.out).includes(c), `${c} in the root's cgroup.subtree_control`);
    }
    const child = ran(t, 'child')!;
    assert.equal(child.status, 0, child.out);
    for (const c of ['memory', 'pids', 'cpu']) assert.ok(words(child.out.split('\n')[0]!).includes(c), `${c} in the child's controllers: ${child.out}`);
    assert.match(child.out, /^memory\.max 67108864$/m);
    assert.match(child.out, /^pids\.max 100$/m);
    assert.match(child.out, /^cpu\.max 50000 100000$/m);
    assert.match(child.out, /^self 0::\/smoke$/m);
  });

  test('criu check passes', { skip }, (t) => {
    const criu = ran(t, 'criu');
    if (!criu) return;
    assert.equal(criu.status, 0, criu.out);
    assert.match(criu.out, /Looks good/);
  });

  test('runc and crun run', { skip }, (t) => {
    const runc = ran(t, 'runc');
    if (!runc) return;
    assert.equal(runc.status, 0, runc.out);
    assert.match(runc.out, /^runc version /m);
    const crun = ran(t, 'crun')!;
    assert.equal(crun.status, 0, crun.out);
    assert.match(crun.out, /^crun version /m);
  });

  test('the checkout is shared read-only at the host path', { skip }, (t) => {
    const ro = ran(t, 'readonly');
    if (!ro) return;
    assert.notEqual(ro.status, 0, 'writing into the shared checkout must fail');
    assert.match(ro.out, /Read-only file system/);
  });

  test("node runs this build: the shim's -v as on the host, a unit test file passes", { skip }, (t) => {
    const node = ran(t, 'node');
    if (!node) return;
    assert.equal(node.out.trim(), process.version);
    const shim = ran(t, 'shim')!;
    assert.equal(shim.status, 0, shim.out);
    const onHost = execFileSync(join(repoRoot(), 'dist', 'containerd-shim-ts-v2'), ['-v'], { encoding: 'utf8' });
    assert.equal(shim.out, onHost);
    const unit = ran(t, 'unit')!;
    assert.equal(unit.status, 0, unit.out);
    assert.match(unit.out, /^# fail 0$/m);
    assert.doesNotMatch(unit.out, /^# pass 0$/m);
  });
});
