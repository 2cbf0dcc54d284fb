import { isAbsolute, normalize } from 'node:path';
import { invalidArgument } from '../../protocol/errdefs.js';

// containerd's identifiers package: what containerd itself accepts for container, exec and namespace names.
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
const MAX_IDENTIFIER = 76;

/** Ids become file names (pid files, runc state dirs): refuse anything that could leave its directory. */
export function validateId(kind: 'container id' | 'exec id' | 'namespace', id: string): void {
  if (id === '') throw invalidArgument(`${kind} must not be empty`);
  if (id.length > MAX_IDENTIFIER) throw invalidArgument(`${kind} "${id.slice(0, 80)}..." greater than maximum length (${MAX_IDENTIFIER} characters)`);
  if (!IDENTIFIER.test(id)) throw invalidArgument(`${kind} ${JSON.stringify(id)} must match ${IDENTIFIER.source}`);
}

/** A path from the client (bundle, checkpoint dir): absolute, normalized, no NUL, no `..` components. */
export function validatePath(what: string, p: string): void {
  if (p.includes('\0')) throw invalidArgument(`${what} contains a NUL byte`);
  if (!isAbsolute(p)) throw invalidArgument(`${what} ${JSON.stringify(p)} must be an absolute path`);
  if (p.split('/').includes('..')) throw invalidArgument(`${what} ${JSON.stringify(p)} must not contain ".."`);
  if (p.length > 4096) throw invalidArgument(`${what} is too long`);
  if (normalize(p) !== p && normalize(p) + '/' !== p) throw invalidArgument(`${what} ${JSON.stringify(p)} is not a clean path`);
}
