// examples/attach/detach-keys: docker's notation for detach keys, and the scanner that finds them in typed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DetachKeyScanner, parseDetachKeys } from '../../examples/attach/detach-keys.js';

test('parses docker notation: ctrl-<a-z@[\\]^_>, single characters, commas', () => {
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [0x10, 0x11]);
  assert.deepEqual([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_')], [0x00, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f]);
  assert.deepEqual([...parseDetachKeys('ctrl-A,x, ctrl-z')], [0x01, 0x78, 0x1a]);
  for (const bad of ['', 'ctrl-', 'ctrl-1', 'ctrl-pq', 'ab', 'é']) assert.throws(() => parseDetachKeys(bad), /detach keys/, bad);
});

const scanAll = (scanner: DetachKeyScanner, chunks: string[]) =>
  chunks.map((c) => {
    const r = scanner.scan(Buffer.from(c, 'latin1'));
    return [r.forward.toString('latin1'), r.detach] as const;
  });

test('the whole sequence detaches and is never forwarded, also split over reads', () => {
  const keys = parseDetachKeys('ctrl-p,ctrl-q');
  assert.deepEqual(scanAll(new DetachKeyScanner(keys), ['ls\x10\x11']), [['ls', true]]);
  assert.deepEqual(scanAll(new DetachKeyScanner(keys), ['ls\x10', '\x11']), [['ls', false], ['', true]]);
});

test('a broken sequence is forwarded as typed, in order', () => {
  const s = new DetachKeyScanner(parseDetachKeys('ctrl-p,ctrl-q'));
  assert.deepEqual(scanAll(s, ['\x10', 'a', '\x10\x10\x11']), [
    ['', false], // held: could be the start of the sequence
    ['\x10a', false],
    ['\x10', true], // the first ctrl-p broke nothing but restarted the match
  ]);
});

test('a one-key sequence, and bytes after the sequence in the same read are dropped', () => {
  const s = new DetachKeyScanner(parseDetachKeys('ctrl-]'));
  assert.deepEqual(scanAll(s, ['abc\x1dtail']), [['abc', true]]);
  assert.throws(() => new DetachKeyScanner(Buffer.alloc(0)), /empty/);
});
