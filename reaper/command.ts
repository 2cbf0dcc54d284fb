/**
 * Finding executables before spawning. Needed because the parent-death signal is set by a wrapper
 * (`setpriv … -- <cmd>`): a missing command would otherwise show up as setpriv's exit code 127 instead of
 * a spawn error. The lookup is a few stat(2) calls on local paths, done synchronously so spawn() can
 * return a pid (or throw) in the same tick.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { ShimError, kindOf } from '../protocol/errdefs.js';

// What execvp(3) uses when PATH is unset.
const DEFAULT_PATH = '/bin:/usr/bin';

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The absolute path execvp would run for `cmd`, with PATH taken from the child's environment (as libuv
 * does). Throws ShimError NotFound / PermissionDenied.
 */
export function resolveCommand(cmd: string, env: NodeJS.ProcessEnv, cwd: string | undefined): string {
  if (cmd.length === 0) throw new ShimError('InvalidArgument', 'spawn: empty command');
  if (cmd.includes('/')) {
    const path = isAbsolute(cmd) ? cmd : resolve(cwd ?? process.cwd(), cmd);
    try {
      accessSync(path, constants.X_OK);
    } catch (err) {
      throw new ShimError(kindOf(err), `${cmd}: ${(err as Error).message}`, { cause: err });
    }
    if (!statSync(path).isFile()) throw new ShimError('PermissionDenied', `${cmd}: not a regular file`);
    return path;
  }
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(delimiter)) {
    const path = resolve(cwd ?? process.cwd(), join(dir || '.', cmd));
    if (isExecutableFile(path)) return path;
  }
  throw new ShimError('NotFound', `${cmd}: executable file not found in $PATH`);
}

/** setpriv (util-linux ≥ 2.33 has --pdeathsig) from the shim's own PATH, or undefined. */
export function findSetpriv(): string | undefined {
  try {
    return resolveCommand('setpriv', { PATH: `${process.env.PATH ?? DEFAULT_PATH}:/usr/bin:/bin` }, '/');
  } catch {
    return undefined;
  }
}
