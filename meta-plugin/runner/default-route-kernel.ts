/**
 * The kernel side of default-route (S19) and of CHECK's interface test, through netlink in the pod's netns
 * (DESIGN decision 4: no `ip` processes).
 */
import { isIP } from 'node:net';
import { Netlink, RT_TABLE } from '../../kernel';
import { PlexusError } from '../../core/errors';
import type { DefaultRouteOps } from './default-route';

export const kernelRouteOps: DefaultRouteOps = {
  async setDefaultRoute(netns: string, ifName: string, gateways: string[]): Promise<void> {
    const nl = await Netlink.open(netns);
    try {
      const link = await nl.getLink(ifName);
      if (!link) throw new PlexusError('KernelFailure', `default-route: interface ${ifName} not found in ${netns}`);
      for (const family of [4, 6] as const) {
        for (const r of await nl.listRoutes({ family, table: RT_TABLE.MAIN })) {
          if (r.dst !== 'default' || r.oifIndex === link.index) continue;
          const spec = { dst: 'default', family, table: r.table, metric: r.metric, ...(r.gateway ? { gateway: r.gateway } : {}), ...(r.oifIndex ? { oifIndex: r.oifIndex } : {}) };
          await nl.deleteRoute(spec);
        }
      }
      const perFamily = { 4: 0, 6: 0 };
      for (const gw of gateways) {
        const family = isIP(gw) === 6 ? 6 : 4;
        // S19: several gateways of one family: the order given becomes the metric order.
        const metric = perFamily[family]++;
        await nl.replaceRoute({ dst: 'default', family, gateway: gw, ifName, ...(metric > 0 ? { metric } : {}) });
      }
    } finally {
      nl.close();
    }
  },
};

export async function kernelLinkExists(netns: string, ifName: string): Promise<boolean> {
  const nl = await Netlink.open(netns);
  try {
    return (await nl.getLink(ifName)) !== undefined;
  } finally {
    nl.close();
  }
}
