/** The admin service (messages.ts) on the daemon's socket: Describe and Upgrade. */
import type { RawHandler } from '../../protocol/ttrpc/service.js';
import { ShimError } from '../../protocol/errdefs.js';
import { ADMIN_SERVICE, decodeJson, encodeJson, type DescribeResponse, type UpgradeReport, type UpgradeRequest } from './messages.js';
import { thisBuild } from './rollback.js';
import { STATE_FORMAT } from './state.js';
import { upgradeInPlace, type UpgradeContext } from './upgrade-daemon.js';

export { ADMIN_SERVICE };

/**
 * `report`: the answer owed to the Upgrade call that the previous image handed over (this image resumed);
 * the first Upgrade call re-run after the hand-over gets it, later ones upgrade again.
 */
export function adminMethods(ctx: UpgradeContext, report: { pending?: UpgradeReport }): Record<string, RawHandler> {
  return {
    Describe: async () => {
      const r: DescribeResponse = {
        pid: process.pid,
        build: thisBuild(),
        namespace: ctx.flags.namespace,
        address: ctx.flags.address,
        socket: ctx.address(),
        containers: ctx.service.ids(),
        formats: [STATE_FORMAT],
      };
      return encodeJson(r);
    },
    Upgrade: async (payload) => {
      if (report.pending) {
        const r = report.pending;
        report.pending = undefined;
        return encodeJson(r);
      }
      let req: UpgradeRequest;
      try {
        req = decodeJson<UpgradeRequest>(payload);
      } catch (err) {
        throw new ShimError('InvalidArgument', 'upgrade request is not JSON', { cause: err });
      }
      if (typeof req.binary !== 'string') throw new ShimError('InvalidArgument', 'upgrade request needs "binary"');
      return encodeJson(await upgradeInPlace(ctx, req.binary));
    },
  };
}
