// A node:test reporter for the test VM's guest runs (test/harness/vm.ts adds it beside the TAP reporter): each
// test's start (test:dequeue) and end go to its destination (the guest's console), so the host knows which case
// runs, and every event touches /run/shim-vm-progress (its current case), by whose age the guest's watchdog
// (test/vm/guest-watchdog.sh) tells a stuck case.
import { writeFileSync } from 'node:fs';

interface TestEvent {
  type: string;
  data: { name?: string; nesting?: number; details?: { duration_ms?: number } };
}

const PROGRESS = process.env.SHIM_VM_PROGRESS ?? '/run/shim-vm-progress';

export default async function* progressReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let current = '';
  for await (const event of source) {
    const name = event.data.name ?? '';
    let line: string | undefined;
    if (event.type === 'test:dequeue') {
      current = name;
      line = `SHIM_VM_CASE start ${name}`;
    } else if (event.type === 'test:pass' || event.type === 'test:fail') {
      const ms = Math.round(event.data.details?.duration_ms ?? 0);
      line = `SHIM_VM_CASE ${event.type === 'test:pass' ? 'pass' : 'fail'} ${name} (${ms} ms)`;
    }
    try {
      writeFileSync(PROGRESS, `${current}\n`);
    } catch {
      // no /run (not in the VM): the console lines alone
    }
    if (line) yield `${line}\n`;
  }
}
