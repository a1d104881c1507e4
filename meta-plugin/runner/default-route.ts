/**
 * default-route (S19): the attachment that asked for it gets the pod's default route(s), every other
 * interface loses its default route, and the recorded results are rewritten to say so, so CHECK, status and
 * the result returned to the runtime tell the truth. The kernel side is behind `DefaultRouteOps`.
 */
import { isIP } from 'node:net';
import { defaultDstOf, isDefaultDst, parseResult } from '../../cni/result';
import type { AttachmentRecord, SandboxRecord } from './sandbox-records';

export interface DefaultRouteOps {
  /**
   * In `netns`, delete every default route not through `ifName` and install one through `ifName` per
   * gateway (several of one family get increasing metrics, in the order given: S19).
   */
  setDefaultRoute(netns: string, ifName: string, gateways: string[]): Promise<void>;
}

/** The gateways an attachment's default route uses: the requested ones, else its result's gateways. */
export function gatewaysOf(att: AttachmentRecord): string[] {
  if (att.defaultRoute && att.defaultRoute.length > 0) return att.defaultRoute;
  if (att.result === undefined) return [];
  const ips = parseResult(att.result, att.conf.cniVersion).ips ?? [];
  return [...new Set(ips.map((ip) => ip.gateway).filter((g): g is string => !!g))];
}

export async function applyDefaultRoute(rec: SandboxRecord, ops: DefaultRouteOps): Promise<void> {
  const chosen = rec.attachments.find((a) => a.defaultRoute !== undefined);
  if (!chosen) return;
  const gateways = gatewaysOf(chosen);
  await ops.setDefaultRoute(rec.netns, chosen.ifName, gateways);
  for (const att of rec.attachments) rewriteDefaultRoutes(att, att === chosen ? gateways : []);
}

/** Drop default routes from a raw result and add one per gateway; raw results keep their own version. */
function rewriteDefaultRoutes(att: AttachmentRecord, gateways: string[]): void {
  const raw = att.result as { routes?: { dst: string; gw?: string }[] } | undefined;
  if (!raw || typeof raw !== 'object') return;
  const kept = (raw.routes ?? []).filter((r) => !isDefaultDst(r.dst));
  const added = gateways.map((gw) => ({ dst: defaultDstOf(isIP(gw) === 6 ? 6 : 4), gw }));
  if (kept.length + added.length > 0 || raw.routes) raw.routes = [...kept, ...added];
}
