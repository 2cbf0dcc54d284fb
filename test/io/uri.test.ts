import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ShimError } from '../../protocol/errdefs.js';
import { parseBinaryUri, parseStdio, uriScheme } from '../../io/uri.js';

const s = (stdin: string, stdout: string, stderr: string, terminal = false) => ({ stdin, stdout, stderr, terminal });

const rejects = (fn: () => unknown, kind: string, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof ShimError && e.kind === kind && re.test(e.message));
};

test('scheme detection follows Go url.Parse', () => {
  assert.equal(uriScheme('/run/containerd/fifo/1/x-stdout'), '');
  assert.equal(uriScheme('file:///var/log/x'), 'file');
  assert.equal(uriScheme('BINARY:///x'), 'binary');
  assert.equal(uriScheme('1abc:/x'), '');
  assert.equal(uriScheme('relative/path'), '');
});

test('all empty is null mode', () => {
  assert.deepEqual(parseStdio(s('', '', '')), { mode: 'null' });
});

test('plain paths are fifo/pipe mode; stdin optional', () => {
  assert.deepEqual(parseStdio(s('', '/f/out', '/f/err')), {
    mode: 'pipes',
    stdin: undefined,
    stdout: { kind: 'path', path: '/f/out' },
    stderr: { kind: 'path', path: '/f/err' },
  });
  const p = parseStdio(s('/f/in', '/f/out', '/f/err'));
  assert.equal(p.mode === 'pipes' && p.stdin, '/f/in');
});

test('a single empty stdout or stderr fails in fifo mode, like the reference', () => {
  rejects(() => parseStdio(s('', '/f/out', '')), 'InvalidArgument', /stderr/);
  rejects(() => parseStdio(s('/f/in', '', '')), 'InvalidArgument', /stdout/);
});

test('fifo:// fails, unknown schemes fail with the reference message', () => {
  rejects(() => parseStdio(s('', 'fifo:///f/out', 'fifo:///f/err')), 'InvalidArgument', /fifo:\/\//);
  rejects(() => parseStdio(s('', 'http://x/y', '')), 'InvalidArgument', /^unknown STDIO scheme http$/);
  rejects(() => parseStdio(s('', '/f/o\nut', '/f/err')), 'InvalidArgument', /control character/);
});

test('file:// sends both streams to the decoded path', () => {
  const p = parseStdio(s('', 'file:///var/log/a%20b.log', ''));
  assert.deepEqual(p, {
    mode: 'pipes',
    stdin: undefined,
    stdout: { kind: 'file', path: '/var/log/a b.log' },
    stderr: { kind: 'file', path: '/var/log/a b.log' },
  });
});

test('binary:// args: key then first value, first-appearance order, empty values kept', () => {
  assert.deepEqual(parseBinaryUri('binary:///usr/bin/logger?--foo=bar&x&--foo=baz&id=%2Fa'), {
    path: '/usr/bin/logger',
    args: ['--foo', 'bar', 'x', '', 'id', '/a'],
  });
  assert.deepEqual(parseStdio(s('/f/in', 'binary:///l', 'binary:///l')), { mode: 'binary', logger: { path: '/l', args: [] } });
});

test('terminal: binary or a fifo path for stdout, stderr ignored', () => {
  assert.deepEqual(parseStdio(s('/f/in', '/f/out', '', true)), {
    mode: 'console',
    stdin: '/f/in',
    stdout: { kind: 'path', path: '/f/out' },
  });
  const b = parseStdio(s('', 'binary:///l?a=b', '', true));
  assert.deepEqual(b, { mode: 'console', stdin: undefined, stdout: { kind: 'binary', logger: { path: '/l', args: ['a', 'b'] } } });
  rejects(() => parseStdio(s('', '', '', true)), 'InvalidArgument', /stdout/);
  rejects(() => parseStdio(s('', 'file:///x', '', true)), 'InvalidArgument', /terminal/);
});
