/**
 * plexus-ipam as the daemon serves it: the CNI IPAM plugin of ipam/, over this node's IPAM service. It
 * shares the service's implicit pools (restored and pre-registered at start, kept when the config's or the
 * manifests' pools change), and gives a StatefulSet's pods sticky addresses without their asking.
 */
import type { Logger } from 'pino';
import type { CniRequest } from '../../cni/request';
import { IpamPlugin } from '../../ipam';
import type { IpamService } from './ipam-service';

export function ipamPluginFor(service: IpamService, log: Logger): { handle(req: CniRequest): Promise<string> } {
  return new IpamPlugin(service.ipam, { log, implicit: service.implicit, sticky: (pod) => service.isSticky(pod) });
}
