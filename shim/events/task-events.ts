/** The task events the shim publishes; the message/topic table lives in protocol/typeurl.ts. */
import type { TaskEvent } from '../../protocol/typeurl.js';

export type { TaskEvent };

/** Something that accepts events in production order; never throws, never blocks the caller. */
export interface EventSink {
  publish(e: TaskEvent): void;
}
