/**
 * plexus-ipam as the daemon serves it: the CNI IPAM plugin of ipam/, over this node's IPAM service. Its
 * inline-range pools are kept when the config's or the manifests' pools change.
 */
import type { Logger } from 'pino';
import type { CniRequest } from '../cni/request';
import { IpamPlugin } from '../../ipam/cni-plugin';
import type { IpamService } from './ipam-service';

export function ipamPluginFor(service: IpamService, log: Logger): { handle(req: CniRequest): Promise<string> } {
  const plugin = new IpamPlugin(service.ipam, { log });
  service.keepPools(() => plugin.implicitPools());
  return plugin;
}
