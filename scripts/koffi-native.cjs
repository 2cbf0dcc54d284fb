'use strict';
// What `import koffi from 'koffi'` resolves to in the shim bundle (scripts/build.mjs aliases it here): koffi's
// native module, loaded directly from the copy the build put next to the bundle. koffi's own JS loader
// resolves packages, reads ELF headers to tell glibc from musl and wraps deprecated APIs on every start
// (~8 ms of each shim process's start-up); the native module has the whole API. Falls back to the package.
const path = require('path');
/* global __KOFFI_VERSION__ */

function loadNative() {
  try {
    const native = require(path.join(__dirname, 'koffi.node'));
    if (native && native.version === __KOFFI_VERSION__) return native;
  } catch {
    /* not copied, or not loadable here (e.g. musl): use the package */
  }
  return undefined;
}

module.exports = loadNative() || require('koffi');
