import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeFrame,
  FrameDecoder,
  HEADER_SIZE,
  MAX_MESSAGE,
  MessageType,
  oversizeMessage,
  type DecodedItem,
} from '../../protocol/ttrpc/frame.js';
import { hex } from './fixtures/harness.js';

test('header layout: BE length, BE stream id, type, flags', () => {
  const f = encodeFrame(0x01020304, MessageType.Response, Buffer.from('abc'), 0x05);
  assert.equal(hex(f), '00000003' + '01020304' + '02' + '05' + '616263');
  assert.equal(hex(encodeFrame(1, MessageType.Request)), '00000000000000010100');
});

test('frames split at every byte or merged in one chunk decode the same', () => {
  const frames = [
    encodeFrame(1, 1, Buffer.from('hello')),
    encodeFrame(3, 2, new Uint8Array(0)),
    encodeFrame(5, 1, Buffer.alloc(70_000, 7), 2),
  ];
  const all = Buffer.concat(frames);
  const summary = (items: DecodedItem[]) =>
    items.map((i) => (i.kind === 'frame' ? `${i.frame.streamId}/${i.frame.type}/${i.frame.flags}/${hex(i.frame.data).slice(0, 12)}/${i.frame.data.length}` : 'oversize'));

  const merged = summary(new FrameDecoder().push(all));
  assert.deepEqual(merged, ['1/1/0/68656c6c6f/5', '3/2/0//0', '5/1/2/070707070707/70000']);

  const d = new FrameDecoder();
  const bytewise: DecodedItem[] = [];
  for (let i = 0; i < all.length; i++) bytewise.push(...d.push(all.subarray(i, i + 1)));
  assert.deepEqual(summary(bytewise), merged);
  assert.ok(d.idle);

  const d2 = new FrameDecoder();
  const odd: DecodedItem[] = [];
  for (let i = 0; i < all.length; i += 997) odd.push(...d2.push(all.subarray(i, i + 997)));
  assert.deepEqual(summary(odd), merged);
});

test('an oversized frame is reported at its header and its data is skipped without buffering', () => {
  const d = new FrameDecoder();
  const len = MAX_MESSAGE + 1;
  const header = Buffer.from(encodeFrame(7, 1).subarray(0, HEADER_SIZE));
  header.writeUInt32BE(len, 0);
  const items = d.push(header);
  assert.deepEqual(items, [{ kind: 'oversize', header: { length: len, streamId: 7, type: 1, flags: 0 } }]);
  // Feed the data in 64 KiB chunks of the same reused buffer; nothing comes out and the decoder stays small.
  const chunk = Buffer.alloc(65536, 0xff);
  let left = len;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    assert.deepEqual(d.push(chunk.subarray(0, n)), []);
    left -= n;
  }
  assert.ok(d.idle);
  const after = d.push(encodeFrame(9, 1, Buffer.from('x')));
  assert.equal(after.length, 1);
  assert.equal(after[0]?.kind === 'frame' && after[0].frame.streamId, 9);
  // Exactly 4 MiB is allowed.
  const max = new FrameDecoder().push(encodeFrame(11, 1, Buffer.alloc(MAX_MESSAGE)));
  assert.equal(max[0]?.kind, 'frame');
});

test('oversize message text matches ttrpc', () => {
  assert.equal(oversizeMessage(4194305), 'message length 4194305 exceed maximum message size of 4194304');
});

test('a truncated header leaves the decoder not idle and emits nothing', () => {
  const d = new FrameDecoder();
  assert.deepEqual(d.push(Buffer.from([0, 0, 0])), []);
  assert.equal(d.idle, false);
});
