/**
 * Wrong-state errors of the init and exec state machines. The texts are the reference's (clients and
 * operators grep for them); the kinds are better than the reference's Unknown: a call that is not allowed in
 * the current state is FailedPrecondition, a call on a deleted process is NotFound.
 */
import { ShimError, failedPrecondition, notFound } from '../../protocol/errdefs.js';
import type { ProcessStatus } from './types.js';

export type Operation = 'start' | 'delete' | 'pause' | 'resume' | 'update' | 'checkpoint' | 'exec' | 'resize';

const ARTICLE: Record<ProcessStatus, string> = {
  created: 'a created',
  running: 'a running',
  pausing: 'a pausing',
  paused: 'a paused',
  stopped: 'a stopped',
  deleted: 'a deleted',
};

export function wrongState(op: Operation, status: ProcessStatus): ShimError {
  if (status === 'deleted') {
    return op === 'exec'
      ? notFound('cannot exec in a deleted state')
      : notFound(`cannot ${op} a deleted process`);
  }
  switch (op) {
    case 'pause':
      if (status === 'created') return failedPrecondition('cannot pause task in created state');
      return failedPrecondition(`cannot pause ${ARTICLE[status]} container`);
    case 'resume':
      if (status === 'created') return failedPrecondition('cannot resume task in created state');
      if (status === 'stopped') return failedPrecondition('cannot resume a stopped container');
      return failedPrecondition(`cannot resume ${ARTICLE[status]} process`);
    case 'update':
      return failedPrecondition(`cannot update ${ARTICLE[status]} container`);
    case 'checkpoint':
      if (status === 'created') return failedPrecondition('cannot checkpoint a task in created state');
      return failedPrecondition(`cannot checkpoint ${ARTICLE[status]} container`);
    case 'exec':
      return failedPrecondition(`cannot exec in ${ARTICLE[status]} state`);
    case 'resize':
      return failedPrecondition(`cannot resize ${ARTICLE[status]} container`);
    default:
      return failedPrecondition(`cannot ${op} ${ARTICLE[status]} process`);
  }
}
