// The esbuild settings of the shim's bundles, shared by scripts/build.mjs (script form: dist/shim.js run by
// node) and scripts/package.mjs (single executable: the same shim with koffi's native part embedded).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
export const koffiVersion = JSON.parse(readFileSync(join(root, 'node_modules', 'koffi', 'package.json'), 'utf8')).version;

export function gitRevision() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch {
    return 'unknown';
  }
}

/** A spare daemon takes only starts of the very build it runs (scripts/shim-wrapper.sh, shim/spare). */
export function newBuildId() {
  return randomBytes(6).toString('hex');
}

/** koffi's native module for glibc x86_64/arm64, or undefined elsewhere. */
export function koffiNativePath() {
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  return arch && join(root, 'node_modules', '@koromix', `koffi-linux-${arch}`, `linux_${arch}`, 'koffi.node');
}

// The daemon never uses pino transports (worker threads): keep thread-stream and pino's worker_threads
// probe out of the bundle, each costs start-up time and memory in every shim process.
export const trimPino = {
  name: 'trim-pino',
  setup(build) {
    build.onResolve({ filter: /^thread-stream$/ }, () => ({ path: join(root, 'scripts', 'stubs', 'thread-stream.cjs') }));
    build.onResolve({ filter: /^worker_threads$/ }, (args) =>
      /[\\/]pino[\\/]/.test(args.importer) ? { path: join(root, 'scripts', 'stubs', 'worker-threads-main.cjs') } : undefined,
    );
  },
};

/**
 * `koffi` in the shim is `module` (which loads koffi's native module directly); a `koffi` import inside that
 * module itself (its fallback to the package) stays external.
 */
export function koffiFrom(module) {
  return {
    name: 'koffi-from',
    setup(build) {
      build.onResolve({ filter: /^koffi$/ }, (args) => (args.importer === module ? { path: 'koffi', external: true } : { path: module }));
    },
  };
}

/**
 * V8 flags of a daemon, set at run time once it serves (shim/heap.ts applyDaemonV8Flags; on node's command
 * line they would make V8 reject Node's built-in code cache). --no-sparkplug and a 4x interrupt budget: what a daemon
 * runs once per call (ttrpc, protobuf, the task service) stays interpreted longer instead of being compiled
 * into baseline and optimized code that stays in the heap: 1000 exec cycles grew the daemon by 4.6 instead of
 * 6.9 MiB PSS (2.6 instead of 4.9 anonymous), exec latency unchanged (1.03x the reference in both runs);
 * loops that move output still get optimized (tty output 0.83x the reference's time, 1 GiB through FIFOs
 * 2.1x its rate).
 */
export const SHIM_V8_FLAGS = ['--no-sparkplug', '--interrupt-budget=270336'];

export function commonOptions(buildId, extraDefine = {}) {
  return {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['koffi', 'node-pty', '@grpc/grpc-js'],
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
    define: {
      __SHIM_VERSION__: JSON.stringify(pkg.version),
      __SHIM_REVISION__: JSON.stringify(gitRevision()),
      __SHIM_BUILD_ID__: JSON.stringify(buildId),
      __KOFFI_VERSION__: JSON.stringify(koffiVersion),
      __SHIM_V8_FLAGS__: JSON.stringify(SHIM_V8_FLAGS),
      ...extraDefine,
    },
  };
}
