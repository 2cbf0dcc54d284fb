/** ttrpc for Node: unary client and server over unix sockets, wire-compatible with containerd/ttrpc v1.1–v1.2. */
export { TtrpcServer, type TtrpcServerOptions, type ListenTarget, type ShutdownOptions } from './server.js';
export { TtrpcClient, socketPath, type ConnectOptions, type CallOptions } from './client.js';
export { unary, type CallContext, type RawHandler, type MessageCodec } from './service.js';
export type { TtrpcLogger } from './logger.js';
export {
  HEADER_SIZE,
  MAX_MESSAGE,
  MessageType,
  Flags,
  FrameDecoder,
  encodeFrame,
  encodeHeader,
  oversizeMessage,
  type Frame,
  type FrameHeader,
  type DecodedItem,
} from './frame.js';
export {
  encodeRequest,
  decodeRequest,
  encodeResponse,
  decodeResponse,
  type Request,
  type Response,
  type Status,
  type KeyValue,
  type AnyMessage,
} from './messages.js';
export { peerCredentials, isSameUser, type PeerCredentials } from './peercred.js';
