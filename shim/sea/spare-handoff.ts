/**
 * `start` of the single executable through a warm spare daemon, before anything heavy is loaded: the
 * protocol of scripts/shim-wrapper.sh's spare_start, which shim/spare/spare.ts answers. Our stdin (the runtime
 * options) is saved in <bundle>/.start-options; our pid goes into the spare's FIFO; SIGUSR1 = answered (the
 * spare wrote the address to our stdout), SIGUSR2 = refused. A spare that dies or says nothing for 5 s is
 * given up on, unless it already claimed the answer (<bundle>/.start-answer.<our pid>, created exclusively by
 * whichever of us answers).
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { setTimeout as sleep } from 'node:timers/promises';
import { sparesEnabled } from '../spare/spare-files.js';
import { liveSpareFifos } from './spare-fifos.js';
import { processExists as isAlive } from '../../reaper/children.js';

/** Where the runtime options are, when they were read off stdin for a spare that then did not answer. */
export const SAVED_OPTIONS_FILE = '.start-options';
const POLL_MS = 50;

export type Handoff = { kind: 'answered' } | { kind: 'not-taken'; savedOptions: string | undefined };

type Word = 'yes' | 'no' | undefined;

export async function startThroughSpare(): Promise<Handoff> {
  let saved: string | undefined;
  const notTaken = (): Handoff => ({ kind: 'not-taken', savedOptions: saved });
  if (!sparesEnabled(process.env)) return notTaken();
  // The spare writes the answer through /proc/<pid>/fd/1: a pipe (containerd's) or a file, not a socket; and
  // a terminal's stdin (by hand) has nothing to read.
  if (isatty(0) || isSocket(1)) return notTaken();
  let word: Word;
  let wake: (() => void) | undefined;
  // Installed for good: a late word from a spare must not kill us (nor start Node's inspector on SIGUSR1).
  process.on('SIGUSR1', () => {
    word = 'yes';
    wake?.();
  });
  process.on('SIGUSR2', () => {
    word = 'no';
    wake?.();
  });
  /** Waits up to `rounds` × 50 ms for the spare's word; false once it refused or is gone. */
  const waitWord = async (spare: number, rounds: number): Promise<boolean> => {
    for (let i = 0; word === undefined && i < rounds && isAlive(spare); i++) {
      const ac = new AbortController();
      wake = () => ac.abort();
      await sleep(POLL_MS, undefined, { signal: ac.signal }).catch(() => undefined);
      wake = undefined;
    }
    return word === 'yes';
  };

  for (const { fifo, pid: spare } of liveSpareFifos()) {
    // Saved before asking: the spare reads them there, and should it refuse or fail, we still have them all.
    if (saved === undefined) {
      writeFileSync(SAVED_OPTIONS_FILE, readFileSync(0));
      saved = SAVED_OPTIONS_FILE;
    }
    word = undefined;
    try {
      const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {
      continue; // gone meanwhile: the next one
    }
    if (await waitWord(spare, 100)) return { kind: 'answered' };
    if (word === 'no' || !isAlive(spare)) return notTaken(); // refused, or died before answering
    // Silent for 5 s: take the answer back, unless the spare has it already.
    try {
      closeSync(openSync(`.start-answer.${process.pid}`, 'wx', 0o600));
      return notTaken();
    } catch {
      /* the spare claimed it: it is answering */
    }
    if (await waitWord(spare, 200)) return { kind: 'answered' };
    process.stderr.write(`containerd-shim-ts-v2: the spare daemon ${spare} took the start but did not answer\n`);
    process.exit(1);
  }
  return notTaken();
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}
