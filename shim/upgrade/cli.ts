/**
 * `containerd-shim-ts-v2 [-address A] [-namespace NS] [-id ID] upgrade`: asks every live daemon of this host
 * (or those serving containerd A, namespace NS, or container ID) to replace its code with this binary, one
 * after the other. Prints one JSON line per daemon on stdout (UpgradeReport, or { pid, result: "error" }) and
 * a readable line on stderr; exits 1 if any daemon was not upgraded.
 */
import { TtrpcClient } from '../../protocol/ttrpc/client.js';
import type { ShimFlags } from '../flags.js';
import { ADMIN_SERVICE, decodeJson, encodeJson, type DescribeResponse, type UpgradeReport } from './messages.js';
import { listDaemons } from './registry.js';
import { processExists } from '../../reaper/children.js';
import { readFile } from 'node:fs/promises';

/**
 * For a daemon that cannot describe itself: do the selecting flags appear in its command line (as containerd
 * started it: -namespace NS -id ID -address A)? -id matches only the daemon's first container there.
 */
async function commandLineMatches(pid: number, flags: ShimFlags): Promise<boolean> {
  const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  const value = (name: string): string | undefined => {
    const i = args.findIndex((a) => a === `-${name}` || a === `--${name}`);
    return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`-${name}=`))?.slice(name.length + 2);
  };
  if (flags.address && value('address') !== flags.address) return false;
  if (flags.namespace && value('namespace') !== flags.namespace) return false;
  if (flags.id && value('id') !== flags.id) return false;
  return true;
}

/** Set by the wrapper (scripts/shim-wrapper.sh) to its own path: the build daemons are moved to. */
export const SELF_ENV = 'CONTAINERD_SHIM_TS_SELF';
const UPGRADE_TIMEOUT_MS = 120_000;

export async function runUpgrade(flags: ShimFlags, out: (line: string) => Promise<void>): Promise<number> {
  const binary = process.env[SELF_ENV];
  if (!binary) {
    process.stderr.write(`upgrade: run it through the installed containerd-shim-ts-v2 (${SELF_ENV} is not set)\n`);
    return 2;
  }
  let failures = 0;
  let matched = 0;
  const error = async (pid: number, err: unknown): Promise<void> => {
    failures++;
    const reason = err instanceof Error ? err.message : String(err);
    await out(JSON.stringify({ pid, result: 'error', reason }));
    process.stderr.write(`daemon ${pid}: error: ${reason}\n`);
  };
  for (const d of await listDaemons()) {
    let client: TtrpcClient | undefined;
    let info: DescribeResponse | undefined;
    try {
      client = await TtrpcClient.connect(d.socket, { timeoutMs: 5000 });
      info = decodeJson<DescribeResponse>(await client.call(ADMIN_SERVICE, 'Describe', encodeJson({}), { timeoutMs: 5000 }));
    } catch (err) {
      client?.close();
      // Gone meanwhile (its last container deleted), or not selected: not ours to report.
      if (!processExists(d.pid) || !(await commandLineMatches(d.pid, flags))) continue;
      // A daemon that cannot say who it is (a build without the admin service answers Unimplemented).
      matched++;
      await error(d.pid, err);
      continue;
    }
    try {
      if (flags.address && info.address !== flags.address) continue;
      if (flags.namespace && info.namespace !== flags.namespace) continue;
      if (flags.id && !info.containers.includes(flags.id)) continue;
      matched++;
      const report = decodeJson<UpgradeReport>(await client.call(ADMIN_SERVICE, 'Upgrade', encodeJson({ binary }), { timeoutMs: UPGRADE_TIMEOUT_MS }));
      if (report.result !== 'upgraded') failures++;
      await out(JSON.stringify(report));
      const pause = report.pauseMs !== undefined ? `, pause ${report.pauseMs} ms` : '';
      process.stderr.write(
        `daemon ${report.pid} (${info.namespace}: ${report.containers.join(', ') || 'no container'}): ${report.result} ` +
          `${report.from.version} (${report.from.build}) -> ${report.to.version} (${report.to.build})${pause}${report.reason ? `: ${report.reason}` : ''}\n`,
      );
    } catch (err) {
      await error(d.pid, err);
    } finally {
      client.close();
    }
  }
  if (matched === 0) process.stderr.write('upgrade: no daemon matched\n');
  return failures > 0 ? 1 : 0;
}
