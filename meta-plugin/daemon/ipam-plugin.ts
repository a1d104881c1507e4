/**
 * plexus-ipam as the daemon serves it. Until the CNI IPAM plugin (ipam/cni-plugin.ts) lands, requests
 * made under that name are refused as "not available" (50), never guessed at.
 */
import type { Logger } from 'pino';
import { PlexusError } from '../cni/errors';
import type { CniRequest } from '../cni/request';
import type { IpamService } from './ipam-service';

export function ipamPluginFor(_service: IpamService, _log: Logger): { handle(req: CniRequest): Promise<string> } {
  return {
    async handle() {
      throw new PlexusError('NotAvailable', 'plexus-ipam is not available yet');
    },
  };
}
