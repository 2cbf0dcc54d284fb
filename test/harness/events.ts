/** `ctr events` running in the background, collecting lines (one event per line). */
import { spawn } from 'node:child_process';
import type { Containerd } from './containerd.js';

export interface EventStream {
  lines(): string[];
  stop(): void;
}

export function watchEvents(cd: Containerd): EventStream {
  const child = spawn(cd.binaries.ctr, ['--address', cd.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines: string[] = [];
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter((l) => l.trim()));
  });
  return {
    lines: () => [...lines],
    stop: () => {
      child.kill('SIGKILL');
    },
  };
}

/**
 * `ctr events` subscribes asynchronously: this starts the stream and returns once it is really receiving,
 * proven by the create event of a probe container (created and removed until one shows up).
 */
export async function watchEventsReady(cd: Containerd, image = 'docker.io/library/busybox:test'): Promise<EventStream> {
  const stream = watchEvents(cd);
  const deadline = Date.now() + 20_000;
  for (let n = 0; ; n++) {
    const probe = `events-probe-${process.pid}-${Date.now()}-${n}`;
    await cd.ctr(['container', 'create', image, probe]);
    await cd.ctr(['container', 'rm', probe]);
    for (let i = 0; i < 10; i++) {
      if (stream.lines().some((l) => l.includes(probe))) return stream;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (Date.now() > deadline) {
      stream.stop();
      throw new Error('ctr events did not subscribe within 20 s');
    }
  }
}
