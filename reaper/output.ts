/** Bounded collection of a child's output (Reaper.run, the runc driver). */
import type { Readable } from 'node:stream';

export interface Collected {
  /** Resolves at EOF, on error, or when the stream is destroyed. */
  readonly done: Promise<void>;
  buffer(): Buffer;
  readonly truncated: boolean;
}

export function collect(stream: Readable | null, maxBytes: number): Collected {
  const chunks: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  const done = new Promise<void>((resolve) => {
    if (!stream) {
      resolve();
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      const room = maxBytes - kept;
      if (room <= 0) {
        truncated = true;
        return; // keep reading so the child never blocks on a full pipe
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) truncated = true;
      chunks.push(part);
      kept += part.length;
    });
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  return {
    done,
    buffer: () => Buffer.concat(chunks, kept),
    get truncated() {
      return truncated;
    },
  };
}

/**
 * After the child's exit its output can still be in the pipes (the exit and the last reads are separate events
 * of the loop): waits for both ends, bounded by `timeoutMs` (a process the child left behind may hold a pipe
 * open forever), then destroys the streams.
 */
export async function drained(collected: readonly Collected[], streams: readonly (Readable | null)[], timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  await Promise.race([Promise.all(collected.map((c) => c.done)), timeout]);
  clearTimeout(timer);
  for (const s of streams) s?.destroy();
}
