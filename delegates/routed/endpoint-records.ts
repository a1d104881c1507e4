/**
 * What plexus-routed remembers of each endpoint: one small JSON file per pod interface in
 * `<stateDir>/routed/<host veth>.json`, written atomically (core/atomic-file.ts). The kernel is the
 * truth for traffic; records are what the daemon reconciles the kernel against when it starts, and what DEL and
 * CHECK compare with. File names are host veth names, which are derived (never taken from input).
 */
import { join } from 'node:path';
import { RecordDir } from '../../core/record-dir';

export interface EndpointAddress {
  /** "10.244.0.5/32", "fd00:244::5/128": what the pod end carries. */
  cidr: string;
  ip: string;
  family: 4 | 6;
}

export interface EndpointRecord {
  containerId: string;
  ifName: string;
  netns: string;
  network: string;
  hostIf: string;
  hostIfindex: number;
  hostMac: string;
  podMac: string;
  mtu: number;
  /** Whether from_pod is attached to this endpoint (false: kernel routing only). */
  ebpf: boolean;
  addresses: EndpointAddress[];
  /** Families whose default route this endpoint installed (absent in older records: all). */
  defaults?: (4 | 6)[];
  pod?: { namespace: string; name: string; uid?: string };
}

const HOST_IF = /^plx[0-9a-f]{11}$/;

export class EndpointRecords {
  private readonly files: RecordDir<EndpointRecord>;

  constructor(stateDir: string) {
    this.files = new RecordDir(join(stateDir, 'routed'), HOST_IF, 'host interface name');
  }

  get dir(): string {
    return this.files.dir;
  }

  get(hostIf: string): EndpointRecord | undefined {
    return this.files.get(hostIf);
  }

  put(rec: EndpointRecord): void {
    this.files.put(rec.hostIf, rec);
  }

  remove(hostIf: string): void {
    this.files.remove(hostIf);
  }

  /** Every readable record; a torn or foreign file is skipped (and left for an operator to see). */
  list(): EndpointRecord[] {
    return this.files.list();
  }
}

export const isHostIfName = (name: string): boolean => HOST_IF.test(name);
