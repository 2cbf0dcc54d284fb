/**
 * Stdio strings → a plan, with the runc shim's rules (pkg/process/io.go, runtime/v2/runc/platform.go @ v1.6.20):
 * the scheme is decided by stdout; a plain path is a FIFO (or an existing regular file); `file://` sends both
 * streams to one file; `binary://` starts a logging process; anything else is rejected.
 */
import { invalidArgument } from '../protocol/errdefs.js';

export interface StdioStrings {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

export interface BinaryLoggerSpec {
  readonly path: string;
  /** For each query key, in first-appearance order: the key, then its first value (Go appends it even if empty). */
  readonly args: readonly string[];
}

/** Where one output stream of the container goes. */
export type OutputTarget =
  | { readonly kind: 'path'; readonly path: string } // client FIFO, or an existing regular file
  | { readonly kind: 'file'; readonly path: string }; // file:// (created, appended)

export type StdioPlan =
  /** All three strings empty: runc gets /dev/null (read-only for output, as go-runc's NullIO). */
  | { readonly mode: 'null' }
  /** OS pipes between runc and the shim; the shim copies to/from the named targets. */
  | {
      readonly mode: 'pipes';
      readonly stdin?: string;
      readonly stdout: OutputTarget;
      readonly stderr: OutputTarget;
    }
  /** A logging process reads the container's stdout/stderr pipes directly (the reference copies no stdin). */
  | { readonly mode: 'binary'; readonly logger: BinaryLoggerSpec }
  /** A pty via --console-socket; output is a single stream to a FIFO path or a binary logger. */
  | {
      readonly mode: 'console';
      readonly stdin?: string;
      readonly stdout: { readonly kind: 'path'; readonly path: string } | { readonly kind: 'binary'; readonly logger: BinaryLoggerSpec };
    };

/** Go's url.getScheme: letters, then letters/digits/+-. up to ':'; anything else means "no scheme". */
export function uriScheme(raw: string): string {
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charCodeAt(i);
    const letter = (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x41 && ch <= 0x5a);
    const other = (ch >= 0x30 && ch <= 0x39) || ch === 0x2b || ch === 0x2d || ch === 0x2e;
    if (letter) continue;
    if (other) {
      if (i === 0) return '';
      continue;
    }
    if (ch === 0x3a) {
      if (i === 0) throw invalidArgument(`unable to parse stdout uri: parse ${JSON.stringify(raw)}: missing protocol scheme`);
      return raw.slice(0, i).toLowerCase();
    }
    return '';
  }
  return '';
}

function checkParsable(raw: string): void {
  // Go's url.Parse rejects ASCII control characters anywhere in the string.
  if (/[\x00-\x1f\x7f]/.test(raw)) {
    throw invalidArgument(`unable to parse stdout uri: parse ${JSON.stringify(raw)}: net/url: invalid control character in URL`);
  }
}

/** The decoded path of `scheme://host/path?query` (host ignored, as the Go shim uses only u.Path). */
function uriPath(raw: string): string {
  const afterScheme = raw.slice(raw.indexOf(':') + 1);
  const noQuery = afterScheme.split(/[?#]/, 1)[0] ?? '';
  let path = noQuery;
  if (path.startsWith('//')) {
    const slash = path.indexOf('/', 2);
    path = slash < 0 ? '' : path.slice(slash);
  }
  try {
    return decodeURIComponent(path);
  } catch (err) {
    throw invalidArgument(`unable to parse stdout uri: invalid escape in ${JSON.stringify(raw)}`, err);
  }
}

/** binary:///path?k=v&flag → { path, args: ['k', 'v', 'flag', ''] }. */
export function parseBinaryUri(raw: string): BinaryLoggerSpec {
  const path = uriPath(raw);
  if (path === '') throw invalidArgument(`binary logger uri ${JSON.stringify(raw)} has no path`);
  const q = raw.indexOf('?');
  const args: string[] = [];
  if (q >= 0) {
    const seen = new Set<string>();
    const query = raw.slice(q + 1).split('#', 1)[0] ?? '';
    for (const [k, v] of new URLSearchParams(query)) {
      if (seen.has(k)) continue; // Go keeps all values per key and passes only the first
      seen.add(k);
      args.push(k, v);
    }
  }
  return { path, args };
}

const optional = (s: string): string | undefined => (s === '' ? undefined : s);

/**
 * Decides the stdio plan. Mirrors the reference's failures up front (before runc runs) where it can:
 * unknown schemes, `fifo://` (recognised but never stripped in 1.6.20, so it cannot be opened) and, in FIFO
 * mode, one empty output string among non-empty ones.
 */
export function parseStdio(s: StdioStrings): StdioPlan {
  checkParsable(s.stdout);
  const scheme = uriScheme(s.stdout);
  if (s.terminal) {
    // Console: only binary:// is special; anything else is opened as a FIFO path (stderr is unused).
    if (scheme === 'binary') {
      return { mode: 'console', stdin: optional(s.stdin), stdout: { kind: 'binary', logger: parseBinaryUri(s.stdout) } };
    }
    if (s.stdout === '') throw invalidArgument('terminal requires a stdout fifo: stdout is empty');
    if (scheme !== '') throw invalidArgument(`unsupported stdout ${JSON.stringify(s.stdout)} with a terminal`);
    return { mode: 'console', stdin: optional(s.stdin), stdout: { kind: 'path', path: s.stdout } };
  }
  if (s.stdin === '' && s.stdout === '' && s.stderr === '') return { mode: 'null' };
  switch (scheme) {
    case '': {
      for (const [name, value] of [['stdout', s.stdout], ['stderr', s.stderr]] as const) {
        if (value === '') {
          throw invalidArgument(`containerd-shim: opening ${name} failed: empty path (give all three stdio paths empty, or both stdout and stderr)`);
        }
      }
      checkParsable(s.stderr);
      return {
        mode: 'pipes',
        stdin: optional(s.stdin),
        stdout: { kind: 'path', path: s.stdout },
        stderr: { kind: 'path', path: s.stderr },
      };
    }
    case 'fifo':
      throw invalidArgument(`unsupported stdio uri ${JSON.stringify(s.stdout)}: fifo:// is not supported, pass the plain path`);
    case 'file': {
      const path = uriPath(s.stdout);
      if (!path.startsWith('/')) throw invalidArgument(`file stdio uri ${JSON.stringify(s.stdout)} needs an absolute path`);
      const target: OutputTarget = { kind: 'file', path };
      return { mode: 'pipes', stdin: optional(s.stdin), stdout: target, stderr: target };
    }
    case 'binary':
      return { mode: 'binary', logger: parseBinaryUri(s.stdout) };
    default:
      throw invalidArgument(`unknown STDIO scheme ${scheme}`);
  }
}
