/**
 * Main script of the single executable (scripts/package.mjs). The two actions containerd runs for every
 * container are served here first, before the daemon's bundle is even compiled, as scripts/shim-wrapper.sh
 * serves them for the script form: `start` through a warm spare, `delete` when there is nothing to do.
 * Everything else runs the bundled shim (the asset shim.js, through the V8 code cache asset shim.js.cache).
 */
import { writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getRawAsset } from 'node:sea';
import { Script } from 'node:vm';
import { fastDelete } from './fast-delete.js';
import { startThroughSpare } from './spare-handoff.js';
import { spawnSpare } from './spawn-spare.js';
import { SAVED_OPTIONS_ENV } from '../stdin.js';

/** Build time only (scripts/package.mjs): where to write the code cache, once the shim ran. */
const WRITE_CACHE_ENV = 'SHIM_TS_WRITE_CODE_CACHE_TO';

// As the wrapper: Node 20 loads the CA file eagerly (~37 ms per start), and node options are not the
// container's business. (NODE_OPTIONS of our own start already applied; our children do not inherit it.)
delete process.env.NODE_EXTRA_CA_CERTS;
delete process.env.NODE_OPTIONS;

function asset(key: string): Buffer | undefined {
  try {
    return Buffer.from(getRawAsset(key) as ArrayBuffer);
  } catch {
    return undefined;
  }
}

/** Runs the bundled shim as a CommonJS module; it reads process.argv itself. */
function runShim(): void {
  const source = asset('shim.js')!.toString('latin1'); // esbuild output is ASCII
  const writeCacheTo = process.env[WRITE_CACHE_ENV];
  delete process.env[WRITE_CACHE_ENV];
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: '/containerd-shim-ts-v2/shim.js',
    cachedData: writeCacheTo ? undefined : asset('shim.js.cache'),
  });
  // Build time (scripts/package.mjs): the cache must be accepted, or every process compiles the shim anew.
  if (process.env.SHIM_TS_CHECK_CODE_CACHE === '1' && script.cachedDataRejected !== false) {
    process.stderr.write('containerd-shim-ts-v2: code cache not used\n');
    process.exit(3);
  }
  if (writeCacheTo) {
    // Written at exit, so it also holds the functions compiled while running.
    process.once('exit', () => writeFileSync(writeCacheTo, script.createCachedData()));
  }
  const mod = { exports: {} };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn(mod.exports, createRequire(process.execPath), mod, '/containerd-shim-ts-v2/shim.js', '/containerd-shim-ts-v2');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const action = argv.at(-1);
  if (action === 'start' && !process.env[WRITE_CACHE_ENV]) {
    const handoff = await startThroughSpare();
    if (handoff.kind === 'answered') {
      spawnSpare();
      process.exit(0);
    }
    // The shim's start reads the options where we saved them (stdin is read already).
    if (handoff.savedOptions) process.env[SAVED_OPTIONS_ENV] = handoff.savedOptions;
  } else if (action === 'delete' && !process.env.CONTAINERD_SHIM_TS_NO_FAST_DELETE) {
    const answer = fastDelete(argv, process.cwd());
    if (answer) {
      writeSync(1, answer);
      process.exit(0);
    }
  }
  runShim();
}

main().catch((err: unknown) => {
  process.stderr.write(`containerd-shim-ts-v2: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
