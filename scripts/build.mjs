// Build: type-check and compile everything to build/ (tests run from there), then bundle the shim
// binary and the operator tools into dist/ (one file each: startup cost is paid per container).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse((await import('node:fs')).readFileSync(join(root, 'package.json'), 'utf8'));

function gitRevision() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch {
    return 'unknown';
  }
}

rmSync(join(root, 'build'), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

const dist = join(root, 'dist');
mkdirSync(join(dist, 'examples'), { recursive: true });
// dist/ holds CommonJS bundles; V8 code caching and snapshots need CommonJS scripts.
writeFileSync(join(dist, 'package.json'), '{ "type": "commonjs" }\n');

// The daemon never uses pino transports (worker threads): keep thread-stream and pino's worker_threads
// probe out of the bundle, each costs start-up time and memory in every shim process.
const trimPino = {
  name: 'trim-pino',
  setup(build) {
    build.onResolve({ filter: /^thread-stream$/ }, () => ({ path: join(root, 'scripts', 'stubs', 'thread-stream.cjs') }));
    build.onResolve({ filter: /^worker_threads$/ }, (args) =>
      /[\\/]pino[\\/]/.test(args.importer) ? { path: join(root, 'scripts', 'stubs', 'worker-threads-main.cjs') } : undefined,
    );
  },
};

// `koffi` in the shim is scripts/koffi-native.cjs, which loads koffi's native module directly; its own
// fallback to the package stays external.
const koffiNative = join(root, 'scripts', 'koffi-native.cjs');
const directKoffi = {
  name: 'direct-koffi',
  setup(build) {
    build.onResolve({ filter: /^koffi$/ }, (args) => (args.importer === koffiNative ? { path: 'koffi', external: true } : { path: koffiNative }));
  },
};

// koffi's native module, copied next to the bundle, for glibc x86_64/arm64.
function copyKoffiNative() {
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  const src = arch && join(root, 'node_modules', '@koromix', `koffi-linux-${arch}`, `linux_${arch}`, 'koffi.node');
  if (src && existsSync(src)) copyFileSync(src, join(dist, 'koffi.node'));
}

// A spare daemon takes only starts of the very build it runs (scripts/shim-wrapper.sh, shim/spare).
const BUILD_ID = randomBytes(6).toString('hex');

const common = {
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
    __SHIM_BUILD_ID__: JSON.stringify(BUILD_ID),
    __KOFFI_VERSION__: JSON.stringify(JSON.parse(readFileSync(join(root, 'node_modules', 'koffi', 'package.json'), 'utf8')).version),
  },
};

copyKoffiNative();
const entries = [
  {
    in: 'shim/main.ts',
    out: 'shim.js',
    minify: true,
    plugins: [trimPino, directKoffi],
    external: ['node-pty', '@grpc/grpc-js'],
  },
  { in: 'examples/task-client.ts', out: 'examples/task-client.js' },
  { in: 'examples/attach.ts', out: 'examples/attach.js' },
];
for (const e of entries) {
  if (!existsSync(join(root, e.in))) continue;
  await esbuild.build({
    ...common,
    ...(e.plugins ? { plugins: e.plugins } : {}),
    ...(e.alias ? { alias: e.alias } : {}),
    ...(e.external ? { external: e.external } : {}),
    entryPoints: [join(root, e.in)],
    outfile: join(dist, e.out),
    minify: !!e.minify,
  });
}

// The loader runs shim.js through a V8 code cache; produce the cache by running the shim once (-v, and a
// start that fails early) with the same V8 flags as the wrapper below, since V8 rejects caches built with
// other flags.
const V8_FLAGS = ['--v8-pool-size=1'];
copyFileSync(join(root, 'scripts', 'loader.cjs'), join(dist, 'containerd-shim-ts-v2.cjs'));
rmSync(join(dist, 'shim.js.cache'), { force: true });
{
  const env = { ...process.env, SHIM_TS_WRITE_CODE_CACHE: '1' };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_OPTIONS;
  spawnSync(process.execPath, [...V8_FLAGS, join(dist, 'containerd-shim-ts-v2.cjs'), '-v'], { env, stdio: 'ignore' });
}

// The executable containerd runs: a shell wrapper (scripts/shim-wrapper.sh; absolute node path, V8 flags,
// and the fast paths of `start` and `delete`).
const wrapper = readFileSync(join(root, 'scripts', 'shim-wrapper.sh'), 'utf8')
  .replaceAll('@VERSION@', pkg.version)
  .replaceAll('@BUILD@', BUILD_ID)
  .replaceAll('@NODE@', process.execPath)
  .replaceAll('@DIST@', dist)
  .replaceAll('@FLAGS@', V8_FLAGS.join(' '));
for (const bad of ["'", '@']) {
  if ([process.execPath, dist].some((p) => p.includes(bad))) throw new Error(`build: path with ${bad} cannot go into the wrapper`);
}
writeFileSync(join(dist, 'containerd-shim-ts-v2'), wrapper);
chmodSync(join(dist, 'containerd-shim-ts-v2'), 0o755);
console.log('build: ok');
