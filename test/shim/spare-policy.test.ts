// Whether a start keeps a warm spare (shim/spare/spare-files.ts): the single executable's start decides with
// keepsSpare, the script form's wrapper with the same rule in shell (test/e2e/fast-paths covers that one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepsSpare, sparesEnabled } from '../../shim/spare/spare-files.js';

test('a spare is kept by default, not under CONTAINERD_SHIM_TS_GROUP, and CONTAINERD_SHIM_TS_SPARE decides when set', () => {
  assert.equal(keepsSpare({}), true);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all' }), false);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: '' }), true, 'an empty key groups nothing');
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all', CONTAINERD_SHIM_TS_SPARE: '1' }), true);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_SPARE: '0' }), false);
  assert.equal(keepsSpare({ CONTAINERD_SHIM_TS_GROUP: 'all', CONTAINERD_SHIM_TS_SPARE: '' }), false);
});

test('a spare already waiting is used unless CONTAINERD_SHIM_TS_SPARE=0, grouping or not', () => {
  assert.equal(sparesEnabled({ CONTAINERD_SHIM_TS_GROUP: 'all' }), true);
  assert.equal(sparesEnabled({ CONTAINERD_SHIM_TS_SPARE: '0' }), false);
});
