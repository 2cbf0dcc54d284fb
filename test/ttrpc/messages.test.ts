import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../protocol/ttrpc/messages.js';
import { hex } from './fixtures/harness.js';

test('request round trip and exact bytes', () => {
  const req = {
    service: 'a.S',
    method: 'M',
    payload: Buffer.from([1, 2]),
    timeoutNano: 5_000_000_000n,
    metadata: [{ key: 'k', value: 'v' }],
  };
  const bytes = encodeRequest(req);
  assert.equal(
    hex(bytes),
    '0a03612e53' + '12014d' + '1a020102' + '2080e497d012' + '2a060a016b120176',
  );
  const back = decodeRequest(bytes);
  assert.equal(back.service, 'a.S');
  assert.equal(back.method, 'M');
  assert.equal(hex(back.payload), '0102');
  assert.equal(back.timeoutNano, 5_000_000_000n);
  assert.deepEqual(back.metadata, [{ key: 'k', value: 'v' }]);
});

test('negative timeout_nano survives (int64 ten-byte varint)', () => {
  const bytes = encodeRequest({ service: 's', method: 'm', payload: new Uint8Array(0), timeoutNano: -1n, metadata: [] });
  assert.equal(decodeRequest(bytes).timeoutNano, -1n);
});

test('success response has no status; empty payload is zero bytes', () => {
  assert.equal(encodeResponse({ payload: new Uint8Array(0) }).length, 0);
  assert.equal(hex(encodeResponse({ payload: Buffer.from([8, 0xa0, 0x8d, 6]) })), '120408a08d06');
  const st = decodeResponse(new Uint8Array(0));
  assert.equal(st.status, undefined);
  assert.equal(st.payload.length, 0);
});

test('error response golden bytes (State on an unknown id)', () => {
  const msg = 'container not created: not found';
  const bytes = encodeResponse({ status: { code: 5, message: msg, details: [] }, payload: new Uint8Array(0) });
  assert.equal(hex(bytes), '0a24' + '0805' + '1220' + Buffer.from(msg).toString('hex'));
  assert.deepEqual(decodeResponse(bytes).status, { code: 5, message: msg, details: [] });
});

test('status details (Any) decode', () => {
  // Response{status{code 3, details [Any{type_url "t", value 01}]}}
  const res = decodeResponse(Buffer.from('0a0a' + '0803' + '1a06' + '0a0174120101', 'hex'));
  assert.equal(res.status?.code, 3);
  assert.equal(res.status?.details[0]?.typeUrl, 't');
  assert.equal(hex(res.status?.details[0]?.value ?? new Uint8Array()), '01');
});

test('unknown fields and wire-type mismatches are skipped', () => {
  const base = encodeRequest({ service: 's', method: 'm', payload: new Uint8Array(0), timeoutNano: 0n, metadata: [] });
  // field 9 varint, field 10 fixed64, field 11 bytes, field 1 as varint (mismatch → unknown)
  const extra = Buffer.from('4801' + '510102030405060708' + '5a0200ff' + '0807', 'hex');
  const req = decodeRequest(Buffer.concat([extra, base]));
  assert.equal(req.service, 's');
  assert.equal(req.method, 'm');
});

test('garbage is rejected by throwing', () => {
  const bad = [
    '0a05616263', // length beyond end
    '0a', // tag without value
    '20ffffffffffffffffffff01', // varint too long
    '0f', // wire type 7
    '00', // field number 0
    '2a030a05', // metadata sub-message overruns its length
    '0a02c328', // invalid UTF-8 in service
    '0b', // start group without end
  ];
  for (const h of bad) {
    assert.throws(() => decodeRequest(Buffer.from(h, "hex")), Error, h);
  }
  assert.throws(() => decodeResponse(Buffer.from('0a0508', 'hex')));
});
