/**
 * The shim's own admin service on the daemon's ttrpc socket (containerd never calls it): `upgrade` asks a
 * daemon who it is and to replace its code. Payloads are JSON: a private, versioned-by-field API between
 * builds of this shim, which must stay readable by older and newer builds alike.
 */
import type { BuildInfo } from './state.js';

export const ADMIN_SERVICE = 'containerd_shim_ts.v1.Admin';

export interface DescribeResponse {
  readonly pid: number;
  readonly build: BuildInfo;
  readonly namespace: string;
  /** containerd's address (-address), and our socket. */
  readonly address: string;
  readonly socket: string;
  readonly containers: readonly string[];
  /** State formats this daemon can write (upgrade targets must resume one of them). */
  readonly formats: readonly number[];
}

export interface UpgradeRequest {
  /** The executable to run in place of this daemon's code (absolute path). */
  readonly binary: string;
}

export type UpgradeResult = 'upgraded' | 'rolled-back' | 'refused';

export interface UpgradeReport {
  readonly pid: number;
  readonly result: UpgradeResult;
  readonly from: BuildInfo;
  /** The build serving now (the previous one after a rollback). */
  readonly to: BuildInfo;
  /** How long no request was served (ms), when the code was replaced or rolled back. */
  readonly pauseMs?: number;
  readonly containers: readonly string[];
  readonly reason?: string;
}

/** What `<binary> upgrade-check` prints: whether that build can take a daemon of ours. */
export interface CheckResponse {
  readonly build: BuildInfo;
  readonly formats: readonly number[];
  readonly node: string;
}

export const encodeJson = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v));
export const decodeJson = <T>(b: Uint8Array): T => JSON.parse(Buffer.from(b).toString('utf8')) as T;
