// Build: type-check and compile everything to build/ (tests run from there), then bundle the shim
// binary and the operator tools into dist/ (one file each: startup cost is paid per container).
// scripts/package.mjs makes the single executable from the same sources.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { commonOptions, koffiFrom, koffiNativePath, newBuildId, pkg, root, trimPino } from './shim-bundle.mjs';

// SHIM_TS_DIST=<dir>: only the shim's script form, into <dir> (tests make other builds this way: the in-place
// upgrade's e2e), with SHIM_TS_VERSION as its version and, with SHIM_TS_BROKEN_RESUME=1, a resume that exits.
const variantDir = process.env.SHIM_TS_DIST;
if (!variantDir) {
  rmSync(join(root, 'build'), { recursive: true, force: true });
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
    stdio: 'inherit',
  });
}

const dist = variantDir ?? join(root, 'dist');
const version = process.env.SHIM_TS_VERSION ?? pkg.version;
mkdirSync(join(dist, 'examples'), { recursive: true });
// dist/ holds CommonJS bundles; V8 code caching and snapshots need CommonJS scripts.
writeFileSync(join(dist, 'package.json'), '{ "type": "commonjs" }\n');

// `koffi` in the shim is scripts/koffi-native.cjs, which loads koffi's native module directly from a copy next
// to the bundle.
const directKoffi = koffiFrom(join(root, 'scripts', 'koffi-native.cjs'));
function copyKoffiNative() {
  const src = koffiNativePath();
  if (src && existsSync(src)) copyFileSync(src, join(dist, 'koffi.node'));
}

const BUILD_ID = newBuildId();
const common = commonOptions(BUILD_ID, {
  ...(process.env.SHIM_TS_VERSION ? { __SHIM_VERSION__: JSON.stringify(version) } : {}),
  __SHIM_BROKEN_RESUME__: process.env.SHIM_TS_BROKEN_RESUME === '1' ? 'true' : 'false',
});

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
  if (!existsSync(join(root, e.in)) || (variantDir && e.out !== 'shim.js')) continue;
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
const V8_FLAGS = ['--v8-pool-size=1']; // the daemons' V8 flags are set at run time (shim/heap.ts)
// A spare forks the daemons (shim/spare/fork.ts SPARE_FORK_V8_FLAG): V8 must not need its worker thread, which
// a fork does not copy. Its boot pays for the code cache V8 then rejects, off any start's path.
const SPARE_V8_FLAGS = ['--single-threaded'];
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
  .replace('@PRELUDE@', readFileSync(join(root, 'scripts', 'wrapper-prelude-script.sh'), 'utf8').trimEnd())
  .replaceAll('@RUN@', '"$node" @FLAGS@ "$js"')
  .replaceAll('@RUN_SPARE@', '"$node" @FLAGS@ @SPARE_FLAGS@ "$js"')
  .replaceAll('@VERSION@', version)
  .replaceAll('@BUILD@', BUILD_ID)
  .replaceAll('@NODE@', process.execPath)
  .replaceAll('@DIST@', dist)
  .replaceAll('@FLAGS@', V8_FLAGS.join(' '))
  .replaceAll('@SPARE_FLAGS@', SPARE_V8_FLAGS.join(' '));
for (const bad of ["'", '@']) {
  if ([process.execPath, dist].some((p) => p.includes(bad))) throw new Error(`build: path with ${bad} cannot go into the wrapper`);
}
writeFileSync(join(dist, 'containerd-shim-ts-v2'), wrapper);
chmodSync(join(dist, 'containerd-shim-ts-v2'), 0o755);
console.log('build: ok');
