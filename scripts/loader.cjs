'use strict';
// containerd-shim-ts-v2 loader: runs the bundled shim (shim.js) through a V8 code cache (shim.js.cache) so
// that the three processes of every container (start, daemon, delete) skip most parsing and compiling.
// A missing or stale cache (other node/V8 version or flags) is simply not used.
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');

const file = path.join(__dirname, 'shim.js');
const cacheFile = file + '.cache';
const source = fs.readFileSync(file, 'utf8');
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
if (process.env.SHIM_TS_WRITE_CODE_CACHE === '1') {
  // Written at exit, so it also holds the functions compiled while running (build time only).
  process.once('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
}
const mod = new Module(file, module);
mod.filename = file;
mod.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, __dirname);
