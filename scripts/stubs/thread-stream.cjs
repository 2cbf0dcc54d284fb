'use strict';
// Bundle stub (scripts/build.mjs): the shim never starts pino transports, which are what needs thread-stream.
module.exports = class ThreadStream {
  constructor() {
    throw new Error('pino transports are not available in containerd-shim-ts-v2');
  }
};
