import { Status } from '../../protocol/gen/containerd/api/types/task/task.js';

export type ProcessStatus = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

export interface ExitInfo {
  readonly pid: number;
  /** Exit code, or 128 + signal number. */
  readonly status: number;
  readonly exitedAt: Date;
}

export interface StdioStrings {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

/** What State reports for any process (init or exec). */
export interface ProcessSnapshot {
  readonly id: string;
  readonly pid: number;
  readonly status: ProcessStatus;
  readonly stdio: StdioStrings;
  readonly exit: ExitInfo | undefined;
}

export function statusToProto(s: ProcessStatus): Status {
  switch (s) {
    case 'created':
      return Status.CREATED;
    case 'running':
      return Status.RUNNING;
    case 'pausing':
      return Status.PAUSING;
    case 'paused':
      return Status.PAUSED;
    case 'stopped':
    case 'deleted':
      return Status.STOPPED;
  }
}
