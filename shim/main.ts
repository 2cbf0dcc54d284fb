/** Entry point of containerd-shim-ts-v2: parse the Go-style command line and run one action. */
import { writeSync } from 'node:fs';
import { FlagError, USAGE, parseFlags, type ShimFlags } from './flags.js';
import { RUNTIME_NAME, SHIM_REVISION, SHIM_VERSION } from './version.js';
import { readStdin } from './stdin.js';
import { INLINE_START_ENV } from './inline-start-env.js';
import { IN_SEA } from './sea/self.js';

function fail(message: string, code: number): never {
  process.stderr.write(`${RUNTIME_NAME}: ${message}\n`);
  process.exit(code);
}

/**
 * The answer containerd reads. A failed write must not look like success: containerd would dial an empty
 * address ("dial unix \x00"), so it becomes a non-zero exit with the reason.
 */
function writeStdout(data: string | Uint8Array): Promise<void> {
  return new Promise((resolve) =>
    process.stdout.write(data, (err) => {
      if (err) fail(`writing the answer to stdout: ${err.message}`, 1);
      resolve();
    }),
  );
}

/**
 * Under the wrapper's `start` our exit status is not seen (we run in its background): a failure is told on
 * stdout, which the wrapper reads, as `exit-status:N` after whatever was written (scripts/shim-wrapper.sh).
 */
function reportExitStatusToWrapper(): void {
  process.on('exit', (code) => {
    if (code === 0) return;
    try {
      writeSync(1, `\nexit-status:${code}`);
    } catch {
      /* stdout already let go of (daemon): nobody is waiting for it */
    }
  });
}

async function main(argv: readonly string[]): Promise<void> {
  if (process.env[INLINE_START_ENV]) reportExitStatusToWrapper();
  let flags: ShimFlags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`${err.message}\n${USAGE}`);
      process.exit(2);
    }
    throw err;
  }
  if (process.env.SHIM_TS_WRITE_CODE_CACHE === '1') {
    // Build time: load every action's modules so the V8 code cache covers them (see scripts/loader.cjs).
    await Promise.all([import('./start.js'), import('./serve.js'), import('./delete.js'), import('./info.js'), import('./spare/spare.js'), import('./upgrade/resume.js')]);
  }
  if (flags.version) {
    await writeStdout(`${process.argv[1] ?? 'containerd-shim-ts-v2'}:\n  Version:  ${SHIM_VERSION}\n  Revision: ${SHIM_REVISION}\n  Node version: ${process.version}\n\n`);
    process.exit(0);
  }
  if (flags.info) {
    const { runInfo } = await import('./info.js');
    await writeStdout(await runInfo(await readStdin()));
    process.exit(0);
  }
  if (flags.action === 'resume') {
    const { runResume } = await import('./upgrade/resume.js');
    await runResume();
    return;
  }
  if (flags.action === 'upgrade-check') {
    const { runUpgradeCheck } = await import('./upgrade/resume.js');
    await writeStdout(await runUpgradeCheck());
    process.exit(0);
  }
  if (flags.action === 'upgrade') {
    const { runUpgrade } = await import('./upgrade/cli.js');
    const code = await runUpgrade(flags, (line) => writeStdout(`${line}\n`));
    process.exit(code);
  }
  if (flags.action === 'spare') {
    const { runSpare } = await import('./spare/spare.js');
    await runSpare();
    return;
  }
  if (!flags.namespace) fail('shim namespace cannot be empty', 1);

  switch (flags.action) {
    case 'start': {
      const { runStart } = await import('./start.js');
      const { address, answer } = await runStart(flags);
      if (!address) fail('start: no socket address to report', 1);
      await writeStdout(answer);
      // The single executable has no wrapper: a spare for the next start is started from here.
      if (IN_SEA) (await import('./sea/spawn-spare.js')).spawnSpare();
      process.exit(0);
    }
    // falls through (unreachable: process.exit)
    case 'delete': {
      const { runDelete } = await import('./delete.js');
      const { Reaper } = await import('../reaper/reaper.js');
      const { createStderrLogger } = await import('./log.js');
      const log = createStderrLogger(flags.debug);
      const reaper = Reaper.start({ logger: log });
      const out = await runDelete(flags, reaper, log);
      await writeStdout(out);
      process.exit(0);
    }
    // falls through (unreachable: process.exit)
    case 'serve': {
      if (process.env[INLINE_START_ENV]) {
        // The wrapper's `start`, run as the daemon itself (see scripts/shim-wrapper.sh).
        const { runStartInline } = await import('./start.js');
        await runStartInline(flags, writeStdout);
        return;
      }
      const { runServe } = await import('./serve.js');
      await runServe(flags);
      return;
    }
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(err instanceof Error ? err.message : String(err), 1);
});
