/**
 * `containerd-shim-ts-v2 start`: run by containerd with cwd = bundle and stdout+stderr captured together as
 * the answer. Creates (or reuses) the group's listening socket, hands it to a detached daemon of ourselves as
 * fd 3, records the address in the bundle, and prints only the address.
 */
import { spawn } from 'node:child_process';
import { closeSync, chmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import type { ShimFlags } from './flags.js';
import { groupKey, readBundleSpec } from './platform/bundle.js';
import { socketAddress, socketPath } from './platform/socket-address.js';
import { isSocketLive } from './platform/socket-probe.js';
import { decodeRuntimeOptions } from './runtime/options.js';
import { joinCgroup } from './platform/cgroup-join.js';
import { readStdin, SAVED_OPTIONS_ENV } from './stdin.js';
import { DAEMON_NODE_OPTIONS, IN_SEA, selfCommand } from './sea/self.js';
import { RUNTIME_NAME } from './version.js';
import { INLINE_START_ENV } from './inline-start-env.js';
import { startAnswer, taskApiVersion } from './task-api-version.js';

export interface StartResult {
  readonly address: string;
  /** What to print: the address, or the bootstrap JSON for a containerd that takes task API v3. */
  readonly answer: string;
}

function listenUnix(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ path, backlog: 128 }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

type Listen = { kind: 'new'; server: Server } | { kind: 'reuse' };

/** Listen on the group's socket, or find the live shim already serving it; a stale file is replaced. */
async function listenOrReuse(path: string): Promise<Listen> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    return { kind: 'new', server: await listenUnix(path) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
  }
  if (await isSocketLive(path, 5000)) return { kind: 'reuse' };
  await unlink(path).catch(() => undefined);
  return { kind: 'new', server: await listenUnix(path) };
}

/*
 * The start path's file work is synchronous: the bundle and the socket dir are containerd's local state, the
 * rest is procfs and cgroupfs, and no call is being served yet. Through fs/promises it was a chain of ~20
 * threadpool round trips (two thread wake-ups each) between a spare's take-over and its answer.
 */

/** Atomic write of the address file, as the reference: temp file, then rename. */
export async function writeAddressFile(bundle: string, address: string): Promise<void> {
  const tmp = join(bundle, '.address');
  try {
    unlinkSync(tmp);
  } catch {
    /* none left over */
  }
  const fd = openSync(tmp, 'wx', 0o666);
  try {
    writeSync(fd, address);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(bundle, 'address'));
}

/** Daemon OOM score = containerd's + 1 (clamped), so the kernel prefers killing the shim over containerd. */
async function adjustOomScore(daemonPid: number, containerdPid = process.ppid): Promise<void> {
  try {
    const parent = parseInt(readFileSync(`/proc/${containerdPid}/oom_score_adj`, 'utf8'), 10);
    const score = Math.max(-1000, Math.min(1000, (Number.isFinite(parent) ? parent : 0) + 1));
    writeFileSync(`/proc/${daemonPid}/oom_score_adj`, String(score));
  } catch (err) {
    // The reference ignores permission errors (rootless, user namespaces).
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
  }
}

/** Environment for the daemon: ours, minus what slows Node's start (NODE_EXTRA_CA_CERTS) or alters it. */
export function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NODE_EXTRA_CA_CERTS;
  delete out.NODE_OPTIONS;
  delete out[SAVED_OPTIONS_ENV];
  return out;
}

export async function runStart(flags: ShimFlags): Promise<StartResult> {
  const bundle = process.cwd();
  const spec = await readBundleSpec(bundle);
  const group = groupKey(flags.id, spec.annotations, process.env);
  const address = socketAddress(flags.address, flags.namespace, group);
  const path = socketPath(address)!;

  const version = taskApiVersion(flags.publishBinary, process.env);
  const listened = await listenOrReuse(path);
  if (listened.kind === 'reuse') {
    await writeAddressFile(bundle, address);
    return { address, answer: startAnswer(address, await version) };
  }
  const server = listened.server;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  let daemonPid: number | undefined;
  try {
    chmodSync(path, 0o600);
    await writeAddressFile(bundle, address);
    const daemonArgs = ['-namespace', flags.namespace, '-id', flags.id, '-address', flags.address];
    if (flags.debug) daemonArgs.push('-debug');
    const { file, args } = selfCommand(daemonArgs);
    const env = daemonEnv(process.env);
    if (IN_SEA) env.NODE_OPTIONS = DAEMON_NODE_OPTIONS; // read by node at start-up; shim/sea/entry.ts drops it
    // detached: own session and process group, so containerd's signals to `start`'s group never reach it;
    // stdio not inherited: containerd waits for EOF on the pipe it gave `start`.
    const child = spawn(file, args, {
      cwd: bundle,
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', fd],
      env,
    });
    daemonPid = child.pid;
    if (daemonPid === undefined) throw new Error('failed to start shim daemon');
    child.unref();

    const optionsAny = await readStdin();
    const options = decodeRuntimeOptions(optionsAny);
    if (options.shimCgroup) await joinCgroup(daemonPid, options.shimCgroup);
    await adjustOomScore(daemonPid);
    return { address, answer: startAnswer(address, await version) };
  } catch (err) {
    if (daemonPid !== undefined) {
      try {
        process.kill(daemonPid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await unlink(path).catch(() => undefined);
    throw err;
  }
  // The listening handle is deliberately not closed: libuv unlinks a unix socket path when its server
  // closes. The process exits right after printing, and the daemon owns the socket from here on.
}



/** A `start` to answer: containerd's call as the process that serves it sees it (itself, or a spare's view). */
export interface StartCall {
  readonly flags: ShimFlags;
  /** containerd runs `start` with cwd = bundle. */
  readonly bundle: string;
  /** `start`'s environment (grouping and TTRPC_ADDRESS come from it). */
  readonly env: NodeJS.ProcessEnv;
  /** containerd's pid: the daemon's OOM score is set from its own. */
  readonly containerdPid: number;
  /** `start`'s stdin: the runtime options containerd writes. */
  readOptions(): Promise<Uint8Array>;
  /** Writes `start`'s answer: the address, or the bootstrap JSON that carries it (task-api-version.ts). */
  answer(address: string): Promise<void>;
}

/** The group's socket, and whether a live daemon already serves it (then it is the answer). */
export async function groupSocket(call: StartCall): Promise<{ address: string; path: string; live: boolean }> {
  // The socket directory does not depend on the group: made while the spec is read.
  const dir = dirname(socketPath(socketAddress(call.flags.address, call.flags.namespace, call.flags.id))!);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const spec = await readBundleSpec(call.bundle);
  const group = groupKey(call.flags.id, spec.annotations, call.env);
  const address = socketAddress(call.flags.address, call.flags.namespace, group);
  const path = socketPath(address)!;
  if (dirname(path) !== dir) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return { address, path, live: await isSocketLive(path, 5000) };
}

/** Answers a `start` whose group already has a live daemon: its address. */
export async function answerLiveGroup(call: StartCall, address: string): Promise<void> {
  const [version] = await Promise.all([taskApiVersion(call.flags.publishBinary, call.env), writeAddressFile(call.bundle, address)]);
  await call.answer(startAnswer(address, version));
}

export type BecomeResult = 'serving' | 'group-had-a-daemon';

/**
 * This process becomes the daemon of `call` (it must run with cwd = bundle and `call.env` as its
 * environment): builds the daemon, listens on the group's socket, applies the runtime options, answers the
 * address, and serves. Another `start` of the group may win the socket meanwhile: then that daemon's address
 * is the answer and nothing is served here. On failure everything taken is released and the process exits 1.
 */
export async function becomeDaemon(call: StartCall, socket: { address: string; path: string }, afterAnswer: () => void): Promise<BecomeResult> {
  const optionsRead = call.readOptions();
  optionsRead.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  const { prepareDaemon } = await import('./serve.js');
  const daemon = prepareDaemon(call.flags);
  try {
    const options = decodeRuntimeOptions(await optionsRead);
    try {
      await daemon.listen({ path: socket.path });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      // Another start of the group won the race, or the file is a dead daemon's.
      if (await isSocketLive(socket.path, 5000)) {
        await answerLiveGroup(call, socket.address);
        afterAnswer();
        await daemon.abandon('the group already has a live daemon', 0);
        return 'group-had-a-daemon';
      }
      await unlink(socket.path).catch(() => undefined);
      await daemon.listen({ path: socket.path });
    }
    chmodSync(socket.path, 0o600);
    const [version] = await Promise.all([
      taskApiVersion(call.flags.publishBinary, call.env),
      writeAddressFile(call.bundle, socket.address),
      options.shimCgroup ? joinCgroup(process.pid, options.shimCgroup) : undefined,
      adjustOomScore(process.pid, call.containerdPid > 0 ? call.containerdPid : process.ppid),
    ]);
    await call.answer(startAnswer(socket.address, version));
    afterAnswer();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${RUNTIME_NAME}: start: ${message}\n`);
    return daemon.abandon(`start failed: ${message}`, 1);
  }
  daemon.serving(socket.address);
  return 'serving';
}

/**
 * `start` run as the daemon itself (one Node start per container instead of two), in the background of the
 * wrapper's `start`: the wrapper returns to containerd once we answered and let go of its stdout, so
 * containerd connects to a daemon that is already serving.
 */
export async function runStartInline(flags: ShimFlags, answer: (address: string) => Promise<void>): Promise<void> {
  const containerdPid = parseInt(process.env[INLINE_START_ENV] ?? '', 10);
  delete process.env[INLINE_START_ENV];
  const call: StartCall = {
    flags,
    bundle: process.cwd(),
    env: process.env,
    containerdPid: Number.isInteger(containerdPid) ? containerdPid : 0,
    readOptions: readStdin,
    answer,
  };
  const socket = await groupSocket(call);
  if (socket.live) {
    await answerLiveGroup(call, socket.address);
    process.exit(0);
  }
  const { detachFromStart } = await import('./platform/detach.js');
  // containerd reads until EOF on the pipe it gave `start`: once answered, let go of it, and of its session.
  await becomeDaemon(call, socket, detachFromStart);
}
