/**
 * The one error type of the project. Every failure that crosses a module boundary is (or is wrapped in)
 * a ShimError carrying one of containerd's errdefs kinds; the ttrpc server maps it to a status code
 * exactly once (toStatus), so no other module knows about gRPC codes.
 *
 * Message convention (containerd/errdefs): the wire message ends with ": <kind text>" for classified
 * errors, e.g. "container not created: not found". containerd's FromGRPC strips that suffix and re-wraps,
 * so clients print the same text the Go shim produces.
 */

export type ErrorKind =
  | 'Unknown'
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'NotImplemented'
  | 'Canceled'
  | 'DeadlineExceeded'
  | 'ResourceExhausted'
  | 'Internal'
  | 'PermissionDenied'
  | 'OutOfRange';

/** gRPC status codes (google.rpc.Code) used on the wire. */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type CodeValue = (typeof Code)[keyof typeof Code];

const KIND_TO_CODE: Record<ErrorKind, CodeValue> = {
  Unknown: Code.Unknown,
  InvalidArgument: Code.InvalidArgument,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  FailedPrecondition: Code.FailedPrecondition,
  Unavailable: Code.Unavailable,
  NotImplemented: Code.Unimplemented,
  Canceled: Code.Canceled,
  DeadlineExceeded: Code.DeadlineExceeded,
  ResourceExhausted: Code.ResourceExhausted,
  Internal: Code.Internal,
  PermissionDenied: Code.PermissionDenied,
  OutOfRange: Code.OutOfRange,
};

/** The suffix containerd's errdefs appends (and strips again on the client side). */
const KIND_TEXT: Partial<Record<ErrorKind, string>> = {
  InvalidArgument: 'invalid argument',
  NotFound: 'not found',
  AlreadyExists: 'already exists',
  FailedPrecondition: 'failed precondition',
  Unavailable: 'unavailable',
  NotImplemented: 'not implemented',
  Canceled: 'context canceled',
  DeadlineExceeded: 'context deadline exceeded',
};

export class ShimError extends Error {
  readonly kind: ErrorKind;
  /** The wire status code, when this error was decoded from a peer's status (client side). */
  grpcCode?: number;
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
    this.name = 'ShimError';
  }

  /** The message as the Go shim would put it on the wire: "<message>: <kind text>" when classified. */
  wireMessage(): string {
    const suffix = KIND_TEXT[this.kind];
    if (!suffix || this.message.endsWith(': ' + suffix) || this.message === suffix) return this.message;
    return `${this.message}: ${suffix}`;
  }
}

export const notFound = (msg: string, cause?: unknown) => new ShimError('NotFound', msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new ShimError('AlreadyExists', msg, { cause });
export const invalidArgument = (msg: string, cause?: unknown) => new ShimError('InvalidArgument', msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) =>
  new ShimError('FailedPrecondition', msg, { cause });
export const notImplemented = (msg: string, cause?: unknown) => new ShimError('NotImplemented', msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new ShimError('Unavailable', msg, { cause });

/** Classifies any thrown value: ShimError kinds, abort/timeout errors, and common errno codes. */
export function kindOf(err: unknown): ErrorKind {
  for (let e: unknown = err, depth = 0; e && depth < 8; depth++) {
    if (e instanceof ShimError) return e.kind;
    if (typeof e !== 'object') break;
    const o = e as { name?: unknown; code?: unknown; cause?: unknown };
    if (o.name === 'TimeoutError') return 'DeadlineExceeded';
    if (o.name === 'AbortError') {
      // AbortSignal.timeout() aborts with a TimeoutError as reason; a plain abort is a cancellation.
      const reason = o.cause as { name?: unknown } | undefined;
      return reason?.name === 'TimeoutError' ? 'DeadlineExceeded' : 'Canceled';
    }
    switch (o.code) {
      case 'ENOENT':
        return 'NotFound';
      case 'EEXIST':
        return 'AlreadyExists';
      case 'EACCES':
      case 'EPERM':
        return 'PermissionDenied';
      case 'EINVAL':
        return 'InvalidArgument';
      case 'EPIPE':
        return 'FailedPrecondition';
    }
    e = o.cause;
  }
  return 'Unknown';
}

export interface WireStatus {
  code: number;
  message: string;
}

/** The single kind → status mapping, used only at the server boundary. */
export function toStatus(err: unknown): WireStatus {
  const kind = kindOf(err);
  const message =
    err instanceof ShimError ? err.wireMessage() : err instanceof Error ? err.message : String(err);
  return { code: KIND_TO_CODE[kind], message };
}

/** Client side: a non-OK status back into a ShimError (code → kind, the kind suffix stripped). */
export function fromStatus(status: WireStatus): ShimError {
  const entry = (Object.entries(KIND_TO_CODE) as [ErrorKind, number][]).find(([, c]) => c === status.code);
  const kind: ErrorKind = entry ? entry[0] : 'Unknown';
  let msg = status.message;
  const suffix = KIND_TEXT[kind];
  if (suffix && msg.endsWith(': ' + suffix)) msg = msg.slice(0, -(suffix.length + 2));
  const e = new ShimError(kind, msg);
  e.grpcCode = status.code;
  return e;
}
