/**
 * Publishes task events to containerd over ttrpc (`containerd.services.events.ttrpc.v1.Events/Forward` on
 * TTRPC_ADDRESS), through the ordered outbox: one event in flight at a time, in production order, retried
 * until delivered. The connection is made lazily and re-made after any failure.
 */
import type { Logger } from 'pino';
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import { ForwardRequest, Envelope } from '../../protocol/gen/containerd/api/services/ttrpc/events/v1/events.js';
import { decodeEventAny, eventAny, eventTopic } from '../../protocol/typeurl.js';
import { toTimestamp } from '../../protocol/timestamp.js';
import { OrderedOutbox } from './outbox.js';
import type { EventSink, TaskEvent } from './task-events.js';

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
export const NAMESPACE_METADATA_KEY = 'containerd-namespace-ttrpc';
const FORWARD_TIMEOUT_MS = 5000;

/** An event in the hand-over state: its Any, base64, and when it happened. */
export interface SerializedEvent {
  readonly typeUrl: string;
  readonly any: string;
  readonly at: number;
}

interface Stamped {
  readonly ev: TaskEvent;
  /** When the event happened; containerd shows this, not the (possibly much later) delivery time. */
  readonly at: Date;
}

export class EventPublisher implements EventSink {
  private client: TtrpcClient | undefined;
  private connecting: Promise<TtrpcClient> | undefined;
  private readonly outbox: OrderedOutbox<Stamped>;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly log: Logger,
    capacity?: number,
  ) {
    this.outbox = new OrderedOutbox<Stamped>({
      send: (s) => this.forward(s),
      describe: (s) => `${eventTopic(s.ev.type)} ${describeIds(s.ev)}`,
      isCritical: (s) => s.ev.type === 'TaskExit' || s.ev.type === 'TaskDelete' || s.ev.type === 'TaskStart',
      logger: log,
      ...(capacity ? { capacity } : {}),
    });
  }

  publish(ev: TaskEvent): void {
    this.log.debug({ topic: eventTopic(ev.type), ...idsOf(ev) }, 'event queued');
    this.outbox.push({ ev, at: new Date() });
  }

  /** Stops sending after the event in flight (a hand-over is being prepared); resume() undoes it. */
  pause(): Promise<void> {
    return this.outbox.pause();
  }

  resume(): void {
    this.outbox.resume();
  }

  /** The undelivered events, oldest first, in a form another process can queue again (restore). */
  handoff(): SerializedEvent[] {
    return this.outbox.items().map((s) => ({ any: Buffer.from(eventAny(s.ev).value).toString('base64'), typeUrl: eventAny(s.ev).typeUrl, at: s.at.getTime() }));
  }

  /** Queues events handed over by another process, ahead of anything published here. */
  restore(events: readonly SerializedEvent[]): void {
    for (const e of events) {
      const ev = decodeEventAny({ typeUrl: e.typeUrl, value: Buffer.from(e.any, 'base64') });
      this.log.debug({ topic: eventTopic(ev.type), ...idsOf(ev) }, 'event queued (handed over)');
      this.outbox.push({ ev, at: new Date(e.at) });
    }
  }

  get stats() {
    return this.outbox.stats;
  }

  /** Retry a pending event now rather than after its backoff (call when containerd is likely reachable again). */
  kick(): void {
    this.outbox.kick();
  }

  private async connection(): Promise<TtrpcClient> {
    if (this.client) return this.client;
    if (!this.connecting) {
      this.connecting = TtrpcClient.connect(this.address, { timeoutMs: FORWARD_TIMEOUT_MS }).then(
        (c) => {
          this.client = c;
          this.connecting = undefined;
          c.onClose(() => {
            if (this.client === c) this.client = undefined;
          });
          return c;
        },
        (err: unknown) => {
          this.connecting = undefined;
          throw err;
        },
      );
    }
    return this.connecting;
  }

  private async forward(s: Stamped): Promise<void> {
    const client = await this.connection();
    const req = ForwardRequest.encode({
      envelope: Envelope.fromPartial({
        timestamp: toTimestamp(s.at),
        namespace: this.namespace,
        topic: eventTopic(s.ev.type),
        event: eventAny(s.ev),
      }),
    }).finish();
    try {
      await client.call(EVENTS_SERVICE, 'Forward', req, {
        timeoutMs: FORWARD_TIMEOUT_MS,
        metadata: { [NAMESPACE_METADATA_KEY]: this.namespace },
      });
    } catch (err) {
      // A timed-out or broken connection may hold a half-sent frame: start afresh.
      if (this.client === client) {
        client.close();
        this.client = undefined;
      }
      throw err;
    }
  }

  /** Delivers what is queued (bounded by timeoutMs), then closes the connection. */
  async close(timeoutMs: number): Promise<{ undelivered: number }> {
    const r = await this.outbox.drain(timeoutMs);
    this.client?.close();
    return r;
  }
}

function idsOf(ev: TaskEvent): Record<string, string> {
  const e = ev.event as { containerId?: string; execId?: string; id?: string };
  const out: Record<string, string> = {};
  if (e.containerId) out.container_id = e.containerId;
  if (e.execId) out.exec_id = e.execId;
  else if (e.id && e.id !== e.containerId) out.exec_id = e.id;
  return out;
}

function describeIds(ev: TaskEvent): string {
  return Object.entries(idsOf(ev))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
