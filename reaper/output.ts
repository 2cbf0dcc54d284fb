/** Bounded collection of a child's output for Reaper.run(). */
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
