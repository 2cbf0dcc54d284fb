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
