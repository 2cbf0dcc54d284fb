/**
 * task-client: an operator's debugging tool, like `ctr shim`. Talks ttrpc to any v2 shim socket (ours or
 * containerd-shim-runc-v2) and prints the answer as JSON.
 *
 *   node dist/examples/task-client.js --address unix:///run/containerd/s/<hash> --namespace default --id ID \
 *     [--exec-id EXEC] [--timeout 10s] connect|state|pids|stats|kill SIGNAL [--all]|wait|shutdown [--now]
 */
import { constants } from 'node:os';
import { TtrpcClient } from '../protocol/ttrpc/client.js';
import type { MessageCodec } from '../protocol/ttrpc/service.js';
import * as api from '../protocol/gen/containerd/runtime/v2/task/shim.js';
import { Empty } from '../protocol/gen/google/protobuf/empty.js';
import { Status } from '../protocol/gen/containerd/api/types/task/task.js';
import { unpackAny } from '../protocol/typeurl.js';
import { fromTimestamp, isZeroTime, type Timestamp } from '../protocol/timestamp.js';
import { ShimError } from '../protocol/errdefs.js';

const TASK_V2 = 'containerd.task.v2.Task';
const TASK_V3 = 'containerd.task.v3.Task';

const USAGE = `usage: task-client --address unix:///PATH --namespace NS --id ID [--exec-id EXEC] [--service containerd.task.v2.Task]
                   [--timeout SECONDS] connect|state|pids|stats|kill SIGNAL [--all]|wait|shutdown [--now]`;

interface Args {
  address: string;
  namespace: string;
  id: string;
  execId: string;
  /** Undefined: containerd.task.v2.Task, falling back to v3 for shims that serve only v3 (containerd 2.x runc shim). */
  service: string | undefined;
  timeoutMs: number | undefined;
  all: boolean;
  now: boolean;
  command: string;
  rest: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { address: '', namespace: 'default', id: '', execId: '', service: undefined, timeoutMs: undefined, all: false, now: false, command: '', rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--address': a.address = value(); break;
      case '--namespace': a.namespace = value(); break;
      case '--id': a.id = value(); break;
      case '--exec-id': a.execId = value(); break;
      case '--service': a.service = value(); break;
      case '--timeout': a.timeoutMs = Math.round(parseFloat(value()) * 1000); break;
      case '--all': a.all = true; break;
      case '--now': a.now = true; break;
      case '-h': case '--help': console.log(USAGE); process.exit(0);
      // falls through
      default:
        if (!a.command) a.command = arg;
        else a.rest.push(arg);
    }
  }
  if (!a.address || !a.command) throw new Error('--address and a command are required');
  return a;
}

function parseSignal(s: string | undefined): number {
  if (!s) throw new Error('kill needs a SIGNAL (number or name)');
  if (/^\d+$/.test(s)) return parseInt(s, 10);
  const name = (s.startsWith('SIG') ? s : `SIG${s}`).toUpperCase() as keyof typeof constants.signals;
  const n = constants.signals[name];
  if (n === undefined) throw new Error(`unknown signal ${s}`);
  return n;
}

/**
 * JSON for humans: timestamps as ISO strings, enums by name, bytes as base64, Anys decoded when known,
 * 64-bit integers (bigint in the generated code, e.g. cgroup metrics) as numbers, or strings when too big.
 */
function toJson(value: unknown, key = ''): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map((v) => toJson(v));
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('seconds' in o && 'nanos' in o && Object.keys(o).length === 2) {
      const ts = o as unknown as Timestamp;
      return isZeroTime(ts) ? '0001-01-01T00:00:00Z' : fromTimestamp(ts).toISOString();
    }
    if ('typeUrl' in o && 'value' in o) {
      try {
        const u = unpackAny(o as { typeUrl: string; value: Uint8Array });
        return { typeUrl: u.typeUrl, message: toJson(u.message) };
      } catch {
        return { typeUrl: o.typeUrl, value: toJson(o.value) };
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = toJson(v, k);
    return out;
  }
  if (key === 'status' && typeof value === 'number') return Status[value] ?? value;
  return value;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const client = await TtrpcClient.connect(a.address, { timeoutMs: 5000 });
  const opts = { metadata: { 'containerd-namespace-ttrpc': a.namespace }, ...(a.timeoutMs ? { timeoutMs: a.timeoutMs } : {}) };
  let service = a.service ?? TASK_V2;
  const call = async <Req, Res>(method: string, req: Req, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>): Promise<Res> => {
    try {
      return await client.callTyped(service, method, req, reqCodec, resCodec, opts);
    } catch (err) {
      // The containerd 2.x runc shim serves only v3 (identical messages); an unknown service ran nothing, so retry.
      const v2Unknown = err instanceof ShimError && err.grpcCode === 12 && err.message === `service ${TASK_V2}`;
      if (a.service !== undefined || !v2Unknown) throw err;
      service = TASK_V3;
      return client.callTyped(service, method, req, reqCodec, resCodec, opts);
    }
  };
  let result: unknown;
  switch (a.command) {
    case 'connect':
      result = await call('Connect', { id: a.id }, api.ConnectRequest, api.ConnectResponse);
      break;
    case 'state':
      result = await call('State', { id: a.id, execId: a.execId }, api.StateRequest, api.StateResponse);
      break;
    case 'pids':
      result = await call('Pids', { id: a.id }, api.PidsRequest, api.PidsResponse);
      break;
    case 'stats':
      result = await call('Stats', { id: a.id }, api.StatsRequest, api.StatsResponse);
      break;
    case 'kill':
      result = await call('Kill', { id: a.id, execId: a.execId, signal: parseSignal(a.rest[0]), all: a.all }, api.KillRequest, Empty);
      break;
    case 'wait':
      result = await call('Wait', { id: a.id, execId: a.execId }, api.WaitRequest, api.WaitResponse);
      break;
    case 'shutdown':
      result = await call('Shutdown', { id: a.id, now: a.now }, api.ShutdownRequest, Empty);
      break;
    default:
      throw new Error(`unknown command ${a.command}\n${USAGE}`);
  }
  process.stdout.write(JSON.stringify(toJson(result), null, 2) + '\n');
  client.close();
}

main().catch((err: unknown) => {
  if (err instanceof ShimError) {
    process.stderr.write(JSON.stringify({ error: { code: err.grpcCode ?? null, kind: err.kind, message: err.message } }) + '\n');
  } else {
    process.stderr.write(`task-client: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
});
