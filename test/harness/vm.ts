// The test VM: a Debian 12 guest (its own kernel 6.1, pure cgroup v2, CRIU-capable) booted by qemu to run ONE
// command and power off. test/vm/build-image.sh builds the image from Debian packages (cached in .cache/vm/ by
// its inputs); here qemu boots it with the checkout shared read-only at the same path as on the host and a
// fresh results directory shared read-write, both over 9p, with no network device. The guest's init
// (test/vm/guest-init.sh) runs the command from the results directory and leaves stdout, stderr and the exit
// status there. KVM only with a hardware KVM module (kvm_intel/kvm_amd); otherwise TCG emulation, ~10x slower.
// One VM at a time on a host (a lock file): the machine is small and shared.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTempDir, removeDir, repoRoot } from './util.js';

/** The VM cannot run here (no qemu, image build failed, the guest did not boot): tests skip with `message`. */
export class VmUnavailableError extends Error {
  override name = 'VmUnavailableError';
}

export interface VmRunOptions {
  /** From the guest's init starting the command until it must have powered off (default 10 min). */
  timeoutMs?: number;
  /** From qemu starting until the guest's init runs the command (default 5 min: TCG on a loaded host). */
  bootTimeoutMs?: number;
  /** Exported in the guest before the command. */
  env?: Record<string, string>;
  memoryMb?: number;
  /**
   * vCPUs, at most 2 on the shared test machines. Default (SHIM_VM_CPUS overrides): 2 with KVM, 1 under TCG, where
   * a 2-vCPU guest once locked up both vCPUs in the kernel for good (soft lockups in runc and runc init, see
   * README "The test VM") and, beside a busy host, a vCPU spinning on a lock its preempted twin holds wastes the
   * little CPU qemu gets at nice 10.
   */
  cpus?: number;
  /**
   * The guest prints a heartbeat every 30 s (test/vm/guest-watchdog.sh): no console output for this long (default
   * 5 min, SHIM_VM_SILENCE_S; once the command runs, no line from the guest's userspace: kernel soft-lockup
   * reports do not count) means the guest or qemu is frozen; qemu is killed and the run tried once more
   * (reported loudly), as infrastructure trouble, not a test result.
   */
  silenceMs?: number;
  /**
   * No test event from the guest's reporter (test/vm/progress-reporter.ts: a case starting or ending) for this
   * long (default 10 min, SHIM_VM_STALL_S) while the guest is alive: the run is stopped and fails, naming the
   * case and with the watchdog's dumps of what its processes were doing. Never retried.
   */
  stallMs?: number;
}

export interface VmResult {
  stdout: string;
  stderr: string;
  /** The command's exit status in the guest. */
  status: number;
  /** The serial console: kernel messages and the guest init's markers. */
  console: string;
  accel: 'kvm' | 'tcg';
  /** qemu start → the guest's init running the command. */
  bootMs: number;
  /** qemu start → qemu exited. */
  totalMs: number;
  /** Set when a first boot went silent and this result is from the one retry: why the first was stopped. */
  retriedAfter?: string;
}

/** Set by the guest init (test/vm/guest-init.sh, test/vm/initramfs-init.sh) on the console. */
const RUNNING = 'SHIM_VM_RUNNING';
const FAIL = /SHIM_VM_FAIL: (.*)/;
const LOCKED = 'SHIM_VM_LOCKED';
/** The guest's progress reporter's lines: `SHIM_VM_CASE start <name>`, `SHIM_VM_CASE pass|fail <name> (<ms> ms)`. */
const CASE = /^SHIM_VM_CASE (start|pass|fail) (.*)$/;
const LOCK_FILE = join(tmpdir(), 'containerd-shim-ts-vm.lock');
const QEMU = 'qemu-system-x86_64';

export interface Accel {
  accel: 'kvm' | 'tcg';
  why: string;
}

/**
 * KVM only when a hardware KVM module is loaded and /dev/kvm opens: a software nested KVM (kvm_pvm, as on our
 * CI machines) does not boot an unmodified kernel in useful time. SHIM_VM_ACCEL=kvm|tcg overrides.
 */
export function chooseAccel(): Accel {
  const forced = process.env.SHIM_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, why: `SHIM_VM_ACCEL=${forced}` };
  const hardware = ['kvm_intel', 'kvm_amd'].find((m) => existsSync(`/sys/module/${m}`));
  if (!hardware) {
    const loaded = ['kvm_pvm', 'kvm'].filter((m) => existsSync(`/sys/module/${m}`));
    return { accel: 'tcg', why: `no hardware KVM module (kvm_intel/kvm_amd) loaded${loaded.length ? `; loaded: ${loaded.join(', ')}` : ''}` };
  }
  const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  if (!flags.includes('vmx') && !flags.includes('svm')) return { accel: 'tcg', why: `${hardware} loaded but the CPU shows no vmx/svm` };
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
  } catch (err) {
    return { accel: 'tcg', why: `${hardware} loaded but /dev/kvm does not open: ${(err as Error).message}` };
  }
  return { accel: 'kvm', why: `${hardware} loaded, /dev/kvm opens` };
}

let imagePromise: Promise<string> | undefined;

/** The image's directory (vmlinuz, initrd.img, rootfs.ext4), built once per inputs by test/vm/build-image.sh. */
export function vmImage(): Promise<string> {
  imagePromise ??= buildImage();
  return imagePromise;
}

async function buildImage(): Promise<string> {
  if (process.getuid?.() !== 0) throw new VmUnavailableError('the VM image is built as root (mmdebstrap, files owned by root)');
  const script = join(repoRoot(), 'test', 'vm', 'build-image.sh');
  const r = await runProcess('bash', [script], { timeoutMs: 30 * 60_000, env: { ...process.env, SHIM_VM_NODE: process.execPath } });
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !existsSync(join(dir, 'rootfs.ext4'))) {
    throw new VmUnavailableError(`building the VM image failed (exit ${r.code}): ${lastLines(r.stderr, 8)}`);
  }
  return dir;
}

/**
 * Boots the VM, runs `command` (sh) in it with the checkout as working directory, and returns its output and
 * exit status once the VM has powered off. Throws VmUnavailableError when the VM cannot run here (the guest
 * never got to the command), a plain Error when the command overran its timeout or left no status.
 */
export async function runInVm(command: string, opts: VmRunOptions = {}): Promise<VmResult> {
  const first = await runOnce(command, opts);
  if (!(first instanceof SilentGuest)) return first;
  // Infrastructure, not a test result: a guest that printed nothing for the silence bound is tried once more.
  const note = `VM INFRASTRUCTURE RETRY: ${first.message}`;
  process.stdout.write(`# !!! ${note}\n# !!! booting the guest once more\n`);
  const second = await runOnce(command, opts);
  if (second instanceof SilentGuest) throw new Error(`runInVm: the guest went silent twice (no retry left): ${second.message}`);
  return { ...second, retriedAfter: first.message };
}

/** A run stopped because the guest printed nothing for the silence bound (heartbeats included). */
class SilentGuest {
  constructor(readonly message: string) {}
}

/** The command line that runs node's test runner on `file` in the guest: TAP on stdout, progress on the console. */
export function guestNodeTest(file: string): string {
  return `node --test --test-reporter=tap --test-reporter-destination=stdout --test-reporter=./build/test/vm/progress-reporter.js --test-reporter-destination=/dev/console ${file}`;
}

async function runOnce(command: string, opts: VmRunOptions): Promise<VmResult | SilentGuest> {
  const image = await vmImage();
  const accel = chooseAccel();
  const checkout = repoRoot();
  if (checkout.includes(',')) throw new Error(`runInVm: a checkout path with a comma cannot be shared by -virtfs: ${checkout}`);
  const results = await makeTempDir('vm-');
  try {
    const exports = Object.entries(opts.env ?? {})
      .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
      .join('');
    // The watchdog (heartbeat, dumps of a stuck test) writes to the console only; it dies with the guest.
    const watchdog = 'sh test/vm/guest-watchdog.sh </dev/null >/dev/console 2>&1 &\n';
    await writeFile(join(results, 'command.sh'), `${watchdog}${exports}${command}\n`);
    const cpus = Math.min(opts.cpus ?? (Number(process.env.SHIM_VM_CPUS) || (accel.accel === 'kvm' ? 2 : 1)), 2);
    const kernelArgs = ['console=ttyS0', 'cgroup_no_v1=all', 'panic=-1', 'loglevel=4', `shim_vm.src=${checkout}`];
    const qemu = [
      QEMU, '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-monitor', 'none',
      '-M', 'pc', '-smp', String(cpus), '-m', String(opts.memoryMb ?? 2048),
      ...(accel.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
      '-kernel', join(image, 'vmlinuz'), '-initrd', join(image, 'initrd.img'), '-append', kernelArgs.join(' '),
      // snapshot=on: the guest's writes go to a temp file, the cached image stays as built.
      '-drive', `file=${join(image, 'rootfs.ext4')},format=raw,if=virtio,snapshot=on`,
      '-nic', 'none', '-serial', 'stdio',
      '-virtfs', `local,path=${checkout},mount_tag=src,security_model=none,readonly=on`,
      '-virtfs', `local,path=${results},mount_tag=results,security_model=none`,
    ];
    // flock serialises VMs on this host; the marker tells when this one's clock starts.
    // Waiting for other VMs is bounded (an hour: the longest VM test file takes some minutes).
    const lockWaitS = 3600;
    // qemu at a lower CPU priority (SHIM_VM_NICE, default 10): under TCG it would take both cores of a small
    // machine from the host's own tests running alongside; the guest's timeouts allow for a slow VM.
    const nice = process.env.SHIM_VM_NICE ?? '10';
    const wrapped = ['flock', '-w', String(lockWaitS), LOCK_FILE, 'nice', '-n', nice, 'sh', '-c', `echo ${LOCKED}; exec "$@"`, 'sh', ...qemu];
    const bootTimeoutMs = opts.bootTimeoutMs ?? 5 * 60_000;
    const runTimeoutMs = opts.timeoutMs ?? 10 * 60_000;
    const bounds = {
      bootMs: bootTimeoutMs,
      runMs: runTimeoutMs,
      silenceMs: opts.silenceMs ?? envSeconds('SHIM_VM_SILENCE_S', 300),
      stallMs: opts.stallMs ?? envSeconds('SHIM_VM_STALL_S', 600),
    };
    const run = await bootAndRun(wrapped, bounds);
    const consoleText = run.output;
    await saveConsole(consoleText, run.stderr);
    const failure = FAIL.exec(consoleText)?.[1];
    const where = () => `${run.currentCase ? `running case: ${run.currentCase}; ` : ''}${stallReport(consoleText)}`;
    if (run.stopped === 'silence') {
      return new SilentGuest(`no console output for ${bounds.silenceMs / 1000} s ${run.bootMs === undefined ? 'while booting' : `after ${Math.round((Date.now() - run.startedAt) / 1000)} s of the run`}; ${where()}`);
    }
    if (run.bootMs === undefined) {
      const why = failure ?? (run.stopped === 'boot' ? `the guest did not reach its init within ${bootTimeoutMs} ms` : `qemu exited (${run.code}) before the guest ran the command`);
      throw new VmUnavailableError(`VM (${accel.accel}: ${accel.why}) cannot run here: ${why}; console: ${lastLines(consoleText + run.stderr, 12)}`);
    }
    if (run.stopped === 'stall') throw new Error(`runInVm: stopped: no test progress for ${bounds.stallMs / 1000} s; ${where()}`);
    if (run.stopped === 'run') throw new Error(`runInVm: the command did not finish within ${runTimeoutMs} ms; ${where()}`);
    const statusPath = join(results, 'status');
    if (!existsSync(statusPath)) throw new Error(`runInVm: the VM powered off without a status (${failure ?? `qemu exit ${run.code}`}); console: ${lastLines(consoleText + run.stderr, 12)}`);
    const read = (name: string) => readFile(join(results, name), 'utf8').catch(() => '');
    return {
      stdout: await read('stdout'),
      stderr: await read('stderr'),
      status: Number.parseInt(await read('status'), 10),
      console: consoleText,
      accel: accel.accel,
      bootMs: run.bootMs,
      totalMs: run.totalMs,
    };
  } finally {
    await removeDir(results);
  }
}

/** The run's times on the host's output, and a retry after a silent guest in capitals (it must not pass unseen). */
export function reportVmRun(result: VmResult, what: string): void {
  console.log(`# vm: boot ${result.bootMs} ms, boot + ${what} + power-off ${result.totalMs} ms (${result.accel})`);
  if (result.retriedAfter) console.log(`# !!! VM INFRASTRUCTURE RETRY: the first boot went silent and was stopped: ${result.retriedAfter.slice(0, 3000)}`);
}

function envSeconds(name: string, fallbackS: number): number {
  const v = Number(process.env[name]);
  return (Number.isFinite(v) && v > 0 ? v : fallbackS) * 1000;
}

/** SHIM_VM_SAVE_CONSOLE=<dir>: every run's console (and qemu's stderr) kept there for a post-mortem. */
async function saveConsole(consoleText: string, stderr: string): Promise<void> {
  const dir = process.env.SHIM_VM_SAVE_CONSOLE;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  const name = `console-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`;
  await writeFile(join(dir, name), consoleText + (stderr ? `\n--- qemu stderr ---\n${stderr}` : ''));
}

/**
 * What a stopped run's console tells: the cases that ran (with their times), the watchdog's last dump of the
 * guest's processes (test/vm/guest-watchdog.sh) and the last console lines.
 */
export function stallReport(consoleText: string): string {
  const lines = consoleText.replaceAll('\r', '').split('\n');
  const cases = lines.filter((l) => CASE.test(l)).slice(-12);
  const dumpAt = lines.findLastIndex((l) => l.startsWith('SHIM_VM_WATCHDOG begin'));
  const dump = dumpAt < 0 ? ['(no watchdog dump)'] : lines.slice(dumpAt, dumpAt + 160);
  return `last cases:\n${cases.join('\n')}\nwatchdog:\n${dump.join('\n')}\nlast console lines:\n${lines.slice(-15).join('\n')}`;
}

interface Bounds {
  bootMs: number;
  runMs: number;
  silenceMs: number;
  stallMs: number;
}

interface BootRun {
  code: number | null;
  output: string;
  stderr: string;
  /** Why the host killed qemu: boot or run bound overrun, console silence, or no test progress. */
  stopped?: 'boot' | 'run' | 'silence' | 'stall';
  /** The guest case started and not yet ended when the run ended (from the progress reporter's lines). */
  currentCase?: string;
  startedAt: number;
  bootMs?: number;
  totalMs: number;
}

/** Process groups of VMs still running: killed if the test process exits first (qemu runs detached). */
const liveGroups = new Set<number>();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Runs qemu (behind flock), watching its serial console for the guest init's marker, the heartbeat and the
 * progress reporter's case lines; kills it on a boot or run overrun, on console silence, or on a stalled test.
 */
function bootAndRun(argv: string[], bounds: Bounds): Promise<BootRun> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid !== undefined) liveGroups.add(child.pid);
    let output = '';
    let stderr = '';
    let started: number | undefined;
    let bootMs: number | undefined;
    let stopped: BootRun['stopped'];
    let lastOutputAt = 0;
    let lastUserOutputAt = 0;
    let lastProgressAt = 0;
    let currentCase: string | undefined;
    let pending = '';
    const kill = (why: NonNullable<BootRun['stopped']>) => {
      stopped ??= why;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const check = setInterval(() => {
      if (started === undefined) return;
      const now = Date.now();
      if (bootMs === undefined && now - started > bounds.bootMs) kill('boot');
      else if (bootMs !== undefined && now - started - bootMs > bounds.runMs) kill('run');
      else if (now - (bootMs === undefined ? lastOutputAt : lastUserOutputAt) > bounds.silenceMs) kill('silence');
      else if (bootMs !== undefined && now - lastProgressAt > bounds.stallMs) kill('stall');
    }, 1000);
    const onLine = (line: string) => {
      // Once the command runs, only the guest's userspace counts as a sign of life (the watchdog's heartbeat,
      // the reporter's cases): a kernel that only prints soft lockups is as stuck as one that prints nothing.
      if (bootMs !== undefined && line.startsWith('SHIM_VM_')) lastUserOutputAt = Date.now();
      const m = CASE.exec(line.replace(/\r$/, ''));
      if (!m) return;
      lastProgressAt = Date.now();
      if (m[1] === 'start') currentCase = m[2];
      else if (currentCase !== undefined && m[2]!.startsWith(currentCase)) currentCase = undefined;
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      lastOutputAt = Date.now();
      if (started === undefined && output.includes(LOCKED)) {
        started = Date.now();
        output = output.slice(output.indexOf(LOCKED) + LOCKED.length + 1);
        chunk = output;
      }
      if (started !== undefined && bootMs === undefined && output.includes(RUNNING)) {
        bootMs = Date.now() - started;
        lastProgressAt = Date.now();
        lastUserOutputAt = Date.now();
      }
      if (started === undefined) return;
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(check);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      const startedAt = started ?? Date.now();
      resolve({ code, output, stderr, stopped, currentCase, startedAt, bootMs, totalMs: started === undefined ? 0 : Date.now() - started });
    });
  });
}

/**
 * The gate of the VM tests: on by default where the VM can run (SHIM_TEST_VM unset, `auto` or 1; root,
 * x86_64 Linux, qemu-system-x86_64 on PATH), a skip with the reason elsewhere; SHIM_TEST_VM=0 turns them off,
 * `require` makes a VM that cannot run here fail them instead of skipping. Returns the skip reason, or false.
 */
export function vmTestSkip(): string | false {
  const gate = process.env.SHIM_TEST_VM ?? 'auto';
  if (gate === '0') return 'the test VM is off (SHIM_TEST_VM=0)';
  if (vmRequired()) return false;
  const why = vmPrecheck();
  return why === undefined ? false : `the test VM cannot run here: ${why}`;
}

/** SHIM_TEST_VM=require: the VM must run; VmUnavailableError fails the test. */
export function vmRequired(): boolean {
  return process.env.SHIM_TEST_VM === 'require';
}

/**
 * Why the VM cannot run here before trying, else undefined. qemu must be on PATH; only when asked for
 * explicitly (SHIM_TEST_VM=1 or require) may the image build install it with apt-get.
 */
export function vmPrecheck(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `the test VM is x86_64 Linux only (here ${process.platform}/${process.arch})`;
  if (process.getuid?.() !== 0) return 'the test VM needs root';
  const path = (process.env.PATH ?? '').split(':');
  const explicit = process.env.SHIM_TEST_VM === '1' || vmRequired();
  if (!path.some((d) => existsSync(join(d, QEMU))) && !(explicit && path.some((d) => existsSync(join(d, 'apt-get'))))) {
    return `${QEMU} not found on PATH (apt-get install qemu-system-x86; .ci/run installs it)`;
  }
  return undefined;
}

/**
 * The guest's TAP block of the subtest `name` (its `ok`/`not ok` line with the YAML after it, up to the next
 * subtest), to show why a case failed in the VM; '' when absent.
 */
export function guestSubtestBlock(tap: string, name: string): string {
  const lines = tap.split('\n');
  const start = lines.findIndex((l) => /^\s*(not )?ok \d+ - /.test(l) && l.includes(`- ${name}`));
  if (start < 0) return '';
  let end = start + 1;
  while (end < lines.length && !/^\s*(# Subtest:|(not )?ok \d+ - )/.test(lines[end]!)) end++;
  return lines.slice(start, end).join('\n');
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

function runProcess(cmd: string, args: string[], o: { timeoutMs: number; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + String(err) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
