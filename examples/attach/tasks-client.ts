/**
 * A small typed client for containerd's Tasks service (containerd.services.tasks.v1.Tasks) over @grpc/grpc-js,
 * built on the message codecs generated from Debian's tasks.proto (protocol/gen, `npm run gen`). Only the calls
 * attach needs; each is a plain unary gRPC call with the namespace in the `containerd-namespace` header.
 */
import grpc from '@grpc/grpc-js';
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  TasksDefinition,
  type GetRequest,
  type GetResponse,
  type ResizePtyRequest,
  type WaitRequest,
  type WaitResponse,
} from '../../protocol/gen/containerd/api/services/tasks/v1/tasks.js';

/** The header containerd reads the namespace from (namespaces.GRPCHeader). */
const NAMESPACE_HEADER = 'containerd-namespace';

interface UnaryMethod<Req, Res> {
  readonly name: string;
  readonly requestType: { encode(message: Req, writer?: BinaryWriter): BinaryWriter };
  readonly responseType: { decode(input: Uint8Array): Res };
}

/** A gRPC error with its status code, e.g. grpc.status.NOT_FOUND for an unknown container. */
export type TasksError = grpc.ServiceError;

export class TasksClient {
  readonly #client: grpc.Client;
  readonly #namespace: string;

  /** `address`: containerd's socket, as a path or `unix://PATH`. */
  constructor(address: string, namespace: string) {
    const target = address.startsWith('unix:') ? address : `unix://${address}`;
    this.#client = new grpc.Client(target, grpc.credentials.createInsecure());
    this.#namespace = namespace;
  }

  get(request: GetRequest): Promise<GetResponse> {
    return this.#call(TasksDefinition.methods.get, request);
  }

  resizePty(request: ResizePtyRequest): Promise<unknown> {
    return this.#call(TasksDefinition.methods.resizePty, request);
  }

  /** Blocks (no deadline) until the process exits; answers at once for a process that already has. */
  wait(request: WaitRequest): Promise<WaitResponse> {
    return this.#call(TasksDefinition.methods.wait, request);
  }

  close(): void {
    this.#client.close();
  }

  #call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    const metadata = new grpc.Metadata();
    metadata.set(NAMESPACE_HEADER, this.#namespace);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        `/${TasksDefinition.fullName}/${method.name}`,
        (req: Req) => Buffer.from(method.requestType.encode(req).finish()),
        (bytes: Buffer) => method.responseType.decode(bytes),
        request,
        metadata,
        {},
        (err, response) => (err || response === undefined ? reject(err ?? new Error(`${method.name}: empty answer`)) : resolve(response)),
      );
    });
  }
}
