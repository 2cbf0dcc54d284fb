/**
 * Detach key sequences in docker's notation ("ctrl-p,ctrl-q", "ctrl-@", "a,b"), and a scanner that finds the
 * sequence in what the user types. Bytes that could start the sequence are held back until the sequence
 * completes (detach: they are never sent) or a byte breaks it (then they are sent as typed).
 */

/** Bytes of `ctrl-<key>` for the keys docker accepts after "ctrl-". */
function ctrlByte(key: string): number | undefined {
  const k = key.toLowerCase();
  if (k.length !== 1) return undefined;
  if (k >= 'a' && k <= 'z') return k.charCodeAt(0) - 'a'.charCodeAt(0) + 1;
  // ctrl-@ = 0x00, ctrl-[ = 0x1b (ESC), ctrl-\ = 0x1c, ctrl-] = 0x1d, ctrl-^ = 0x1e, ctrl-_ = 0x1f
  if ('@[\\]^_'.includes(k)) return k.charCodeAt(0) - 0x40;
  return undefined;
}

/** Parses "ctrl-p,ctrl-q" into its bytes; throws on a key it does not know. */
export function parseDetachKeys(spec: string): Buffer {
  const bytes: number[] = [];
  for (const raw of spec.split(',')) {
    const key = raw.trim();
    const ctrl = /^ctrl-(.+)$/i.exec(key);
    const byte = ctrl ? ctrlByte(ctrl[1]!) : key.length === 1 && key.charCodeAt(0) < 0x80 ? key.charCodeAt(0) : undefined;
    if (byte === undefined) throw new Error(`detach keys: unknown key ${JSON.stringify(key)} (use ctrl-<a-z@[\\]^_> or one ASCII character, comma separated)`);
    bytes.push(byte);
  }
  return Buffer.from(bytes);
}

export interface ScanResult {
  /** What to send to the process now. */
  forward: Buffer;
  /** The whole sequence was typed: detach; nothing after it in this chunk is sent. */
  detach: boolean;
}

export class DetachKeyScanner {
  /** How many bytes of the sequence have been typed so far (held back). */
  #matched = 0;

  constructor(private readonly sequence: Buffer) {
    if (sequence.length === 0) throw new Error('detach keys: empty sequence');
  }

  scan(chunk: Buffer): ScanResult {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.sequence[this.#matched]) {
        this.#matched++;
        if (this.#matched === this.sequence.length) {
          this.#matched = 0;
          return { forward: Buffer.from(out), detach: true };
        }
        continue;
      }
      // The sequence broke: what was held back was ordinary input after all.
      for (let i = 0; i < this.#matched; i++) out.push(this.sequence[i]!);
      this.#matched = 0;
      if (byte === this.sequence[0]) this.#matched = 1;
      else out.push(byte);
    }
    return { forward: Buffer.from(out), detach: false };
  }
}
