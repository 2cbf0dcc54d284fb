/** The small libc helpers the IO layer relies on for end-of-output decisions. */
import assert from 'node:assert/strict';
import { readSync, writeSync } from 'node:fs';
import { test } from 'node:test';
import * as sys from '../../io/sys.js';

test('hungUp: a pipe read end reports a hang-up only once every writer is closed', () => {
  const [r, w] = sys.pipe();
  const w2 = sys.dupCloexec(w);
  try {
    assert.equal(sys.hungUp(r), false);
    sys.close(w);
    assert.equal(sys.hungUp(r), false, 'one writer is still open');
    sys.close(w2);
    assert.equal(sys.hungUp(r), true);
  } finally {
    sys.closeQuietly(r);
  }
});

test('hungUp: a pty master reports a hang-up when its slave closes, and pending output stays readable', () => {
  const master = sys.open('/dev/ptmx', sys.O_RDWR | sys.O_NOCTTY | sys.O_NONBLOCK);
  try {
    const slavePath = sys.ptsName(master);
    sys.unlockPt(master);
    const slave = sys.open(slavePath, sys.O_RDWR | sys.O_NOCTTY);
    assert.equal(sys.hungUp(master), false);
    writeSync(slave, 'tail\n');
    sys.close(slave);
    assert.equal(sys.hungUp(master), true);
    const buf = Buffer.alloc(64);
    let got = '';
    for (let i = 0; i < 200 && !got.includes('tail'); i++) {
      try {
        got += buf.subarray(0, readSync(master, buf)).toString();
      } catch (err) {
        if (sys.errnoCode(err) !== 'EAGAIN') break;
      }
    }
    assert.match(got, /tail/);
  } finally {
    sys.closeQuietly(master);
  }
});
