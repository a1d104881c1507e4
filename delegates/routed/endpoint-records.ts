/**
 * What plexus-routed remembers of each endpoint: one small JSON file per pod interface in
 * `<stateDir>/routed/<host veth>.json`, written atomically (core/atomic-file.ts). The kernel is the
 * truth for traffic; records are what the daemon reconciles the kernel against when it starts, and what DEL and
 * CHECK compare with. File names are host veth names, which are derived (never taken from input).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeFileDurably, writeFileAtomic } from '../../core/atomic-file';

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
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'routed');
  }

  private file(hostIf: string): string {
    if (!HOST_IF.test(hostIf)) throw new Error(`invalid host interface name ${JSON.stringify(hostIf)}`);
    return join(this.dir, `${hostIf}.json`);
  }

  get(hostIf: string): EndpointRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.file(hostIf), 'utf8')) as EndpointRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  put(rec: EndpointRecord): void {
    writeFileAtomic(this.file(rec.hostIf), JSON.stringify(rec));
  }

  remove(hostIf: string): void {
    removeFileDurably(this.file(hostIf));
  }

  /** Every readable record; a torn or foreign file is skipped (and left for an operator to see). */
  list(): EndpointRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith('.json') && HOST_IF.test(n.slice(0, -5)))
      .map((n) => this.get(n.slice(0, -5)))
      .filter((r): r is EndpointRecord => r !== undefined);
  }
}

export const isHostIfName = (name: string): boolean => HOST_IF.test(name);
