'use strict';
// Bundle stub (scripts/build.mjs): pino only asks whether it runs on the main thread; the shim always does.
module.exports = { isMainThread: true };
