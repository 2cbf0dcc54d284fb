// npm run package: the shim as one self-contained executable, dist/containerd-shim-ts-v2, that needs no Node on
// the host (Node's single executable applications: node --experimental-sea-config, the blob injected into a
// copy of this node with postject). Inside: shim/sea/entry.ts as main script (the fast paths of `start` and
// `delete`), and as assets the shim's bundle, its V8 code cache and koffi's native module.
//
// Built in dist/sea/; then installed over dist/containerd-shim-ts-v2 (the script form's wrapper) unless
// --no-install (CI tests the single executable from dist/sea/ while the script form's tests run).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { commonOptions, koffiFrom, koffiNativePath, newBuildId, root, trimPino } from './shim-bundle.mjs';

const install = !process.argv.includes('--no-install');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const out = join(root, 'dist', 'sea');
const exe = join(out, 'containerd-shim-ts-v2');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');

const koffiNode = koffiNativePath();
if (!koffiNode || !existsSync(koffiNode)) throw new Error(`package: koffi's native module for ${process.arch} is missing`);
const koffiSha = createHash('sha256').update(readFileSync(koffiNode)).digest('hex');
// Its own build id: its spares never take starts of the script form, nor the other way round.
const buildId = newBuildId();
const common = commonOptions(buildId, { __KOFFI_SHA256__: JSON.stringify(koffiSha) });

await esbuild.build({
  ...common,
  entryPoints: [join(root, 'shim', 'main.ts')],
  outfile: join(out, 'shim.js'),
  minify: true,
  plugins: [trimPino, koffiFrom(join(root, 'shim', 'sea', 'koffi-asset.ts'))],
  external: ['node-pty', '@grpc/grpc-js'],
});
await esbuild.build({
  ...common,
  entryPoints: [join(root, 'shim', 'sea', 'entry.ts')],
  outfile: join(out, 'entry.js'),
  minify: true,
  external: [],
});
for (const f of ['shim.js', 'entry.js']) {
  const text = readFileSync(join(out, f), 'latin1');
  // The bundle may only require Node's own modules: nothing else exists in the executable.
  const foreign = [...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]).filter((m) => !isBuiltin(m));
  if (foreign.length > 0) throw new Error(`package: ${f} requires ${[...new Set(foreign)].join(', ')}`);
  if (/[^\x00-\x7f]/.test(text)) throw new Error(`package: ${f} is not ASCII (entry.ts reads it as latin1)`);
}

/** Makes the executable from the current assets: blob, copy of this node, blob injected. */
function makeExecutable(target, assets) {
  const config = join(out, 'sea-config.json');
  const blob = join(out, 'sea-prep.blob');
  writeFileSync(
    config,
    JSON.stringify({ main: join(out, 'entry.js'), output: blob, disableExperimentalSEAWarning: true, useCodeCache: false, useSnapshot: false, assets }, null, 2),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  copyFileSync(process.execPath, target);
  chmodSync(target, 0o755);
  // postject's ELF writer warns about section names it cannot find; harmless.
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'postject', 'dist', 'cli.js'), target, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`postject failed: ${r.stderr}`);
  rmSync(blob);
}

const assets = { 'shim.js': join(out, 'shim.js'), 'koffi.node': koffiNode };
// Pass 1: without a code cache, run once to produce it (-v loads every module, see shim/main.ts). V8 accepts
// a cache only from the same V8 and flags: this very binary.
const first = join(out, 'first');
makeExecutable(first, assets);
const cache = join(out, 'shim.js.cache');
{
  const env = { ...process.env, SHIM_TS_WRITE_CODE_CACHE: '1', SHIM_TS_WRITE_CODE_CACHE_TO: cache };
  delete env.NODE_OPTIONS;
  delete env.NODE_EXTRA_CA_CERTS;
  const r = spawnSync(first, ['-v'], { env, encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(cache)) throw new Error(`package: producing the code cache failed: ${r.stderr}`);
}
rmSync(first);
// Pass 2: the executable, with the cache. Written beside and renamed: a running spare of the previous build
// notices its file was replaced and exits.
makeExecutable(`${exe}.tmp`, { ...assets, 'shim.js.cache': cache });
renameSync(`${exe}.tmp`, exe);
const version = execFileSync(exe, ['-v'], { encoding: 'utf8', env: { PATH: '/nonexistent', SHIM_TS_CHECK_CODE_CACHE: '1' } });
process.stdout.write(version);

// The file operators copy: the wrapper script (scripts/shim-wrapper.sh with the single file's prelude), then the
// executable. The shell serves `start` through a spare and `delete` when there is nothing to do, as in the
// script form, with no Node start-up; the executable is unpacked once per build and runs everything else.
const elf = join(out, 'containerd-shim-ts-v2.elf');
renameSync(exe, elf);
{
  const payload = readFileSync(elf);
  const template = readFileSync(join(root, 'scripts', 'shim-wrapper.sh'), 'utf8')
    .replace('@PRELUDE@', readFileSync(join(root, 'scripts', 'wrapper-prelude-sea.sh'), 'utf8').trimEnd())
    .replaceAll('@RUN@', '"$sea"')
    .replaceAll('@RUN_SPARE@', '"$sea"') // no V8 flags for a single executable: its spares do not fork
    .replaceAll('@VERSION@', pkg.version)
    .replaceAll('@BUILD@', buildId)
    .replaceAll('@PAYLOAD_SIZE@', String(payload.length));
  // The header names the byte where the payload starts, which depends on the header's length: iterate.
  let at = 0;
  let header = '';
  for (;;) {
    header = template.replaceAll('@PAYLOAD_AT@', String(at + 1));
    const length = Buffer.byteLength(header);
    if (length === at) break;
    at = length;
  }
  if (/@[A-Z_]+@/.test(header)) throw new Error(`package: placeholder left in the wrapper: ${/@[A-Z_]+@/.exec(header)[0]}`);
  writeFileSync(`${exe}.tmp`, Buffer.concat([Buffer.from(header), payload]), { mode: 0o755 });
  renameSync(`${exe}.tmp`, exe);
}
rmSync(elf);
if (install) {
  const dest = join(root, 'dist', 'containerd-shim-ts-v2');
  copyFileSync(exe, `${dest}.tmp`);
  chmodSync(`${dest}.tmp`, 0o755);
  renameSync(`${dest}.tmp`, dest);
  console.log(`package: ok, ${dest} (a single executable, needs no node)`);
} else {
  console.log(`package: ok, ${exe}`);
}
