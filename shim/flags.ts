/**
 * The shim's command line, parsed with Go `flag` package semantics because containerd builds it for the
 * Go shim: `-name value`, `-name=value`, `--name value`; booleans are `-debug` or `-debug=true`; parsing
 * stops at the first non-flag word, which is the action (`start`, `delete`, or none = serve).
 */

export type ShimAction = 'start' | 'delete' | 'serve' | 'spare' | 'upgrade' | 'upgrade-check' | 'resume';

export interface ShimFlags {
  readonly namespace: string;
  readonly id: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly bundle: string;
  readonly socket: string;
  readonly debugSocket: string;
  readonly debug: boolean;
  readonly version: boolean;
  readonly info: boolean;
  readonly action: ShimAction;
}

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  id: 'id',
  address: 'address',
  'publish-binary': 'publishBinary',
  bundle: 'bundle',
  socket: 'socket',
  'debug-socket': 'debugSocket',
};
const BOOL_FLAGS: Record<string, keyof ShimFlags> = {
  debug: 'debug',
  v: 'version',
  version: 'version', // the Rust shim's alias
  info: 'info',
};

function parseBool(name: string, value: string): boolean {
  // Go's strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new FlagError(`invalid boolean value "${value}" for -${name}`);
}

export function parseFlags(argv: readonly string[]): ShimFlags {
  const out: Record<string, string | boolean> = {
    namespace: '',
    id: '',
    address: '',
    publishBinary: '',
    bundle: '',
    socket: '',
    debugSocket: '',
    debug: false,
    version: false,
    info: false,
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const boolKey = BOOL_FLAGS[name];
    const strKey = STRING_FLAGS[name];
    if (boolKey) {
      out[boolKey] = inline === undefined ? true : parseBool(name, inline);
    } else if (strKey) {
      if (inline !== undefined) {
        out[strKey] = inline;
      } else {
        const value = argv[i + 1];
        if (value === undefined) throw new FlagError(`flag needs an argument: -${name}`);
        out[strKey] = value;
        i++;
      }
    } else {
      throw new FlagError(`flag provided but not defined: -${name}`);
    }
  }
  const word = argv[i] ?? '';
  let action: ShimAction;
  if (word === 'start') action = 'start';
  else if (word === 'delete') action = 'delete';
  else if (word === 'spare') action = 'spare'; // started by a daemon (shim/spare), never by containerd
  else if (word === 'upgrade') action = 'upgrade'; // an operator: replace the code of running daemons
  else if (word === 'upgrade-check') action = 'upgrade-check'; // a daemon about to run this build (shim/upgrade)
  else if (word === 'resume') action = 'resume'; // a daemon that exec'ed this build (shim/upgrade)
  else if (word === '') action = 'serve';
  else throw new FlagError(`unknown action "${word}"`);
  return { ...(out as unknown as Omit<ShimFlags, 'action'>), action };
}

export const USAGE = `Usage of containerd-shim-ts-v2:
  -address string      grpc address back to main containerd
  -bundle string       path to the bundle if not workdir
  -debug               enable debug output in logs
  -debug-socket string debug socket path (ignored)
  -id string           id of the task
  -info                print the runtime info and exit (containerd 2.x)
  -namespace string    namespace that owns the shim
  -publish-binary string  path to publish binary (unused: events go over ttrpc)
  -socket string       socket path to serve
  -v                   show the shim version and exit
actions: start | delete | (none: serve) | upgrade (replace the code of running daemons in place; -address,
  -namespace and -id select which, none = every daemon of this host)
`;
