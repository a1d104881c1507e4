/**
 * The lossless on-disk record of every attachment of a sandbox: the exact delegate config, runtimeConfig,
 * interface name and result. DEL, CHECK and GC work from it, so a NAD changed or deleted after ADD does not
 * matter. An attachment is recorded as `adding` before its delegate runs, so a crash mid-ADD still leaves
 * enough for DEL to tear it down; every write is atomic (`atomic-file.ts`).
 *
 * One file per (container ID, CNI_IFNAME): `<stateDir>/records/<containerId>@<ifName>.json`. Both parts are
 * validated branded values and a container ID cannot contain '@'.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerId, IfName, PodRef } from '../../cni/ids';
import type { AttachmentOrigin } from '../planner/types';
import type { NetworkConfList } from '../../cni/network-config';
import type { NetworkStatus } from '../status/network-status';
import { removeFileDurably, writeFileAtomic } from '../../core/atomic-file';

export interface AttachmentRecord {
  index: number;
  origin: AttachmentOrigin;
  statusName: string;
  isDefault: boolean;
  nad?: { namespace: string; name: string };
  ifName: string;
  conf: NetworkConfList;
  runtimeConfig: Record<string, unknown>;
  state: 'adding' | 'added';
  /** The result as the delegate printed it, rewritten only for default-route changes (S19). */
  result?: unknown;
  defaultRoute?: string[];
  resourceName?: string;
  deviceId?: string;
  deviceInfoFile?: string;
}

export interface SandboxRecord {
  kind: 'plexusSandboxV1';
  containerId: ContainerId;
  ifName: IfName;
  netns: string;
  pod: PodRef | null;
  cniArgs: string;
  /** The runtime's cniVersion at ADD. */
  cniVersion: string;
  createdAt: string;
  attachments: AttachmentRecord[];
  /** network-status as published for the pod (S24-S27); set when ADD completes. */
  status?: NetworkStatus[];
  /** The pod's networks annotation these attachments were made from (hot-plug acts when it changes). */
  networks?: string;
}

export class RecordStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'records');
  }

  private pathOf(containerId: string, ifName: string): string {
    return join(this.dir, `${containerId}@${ifName}.json`);
  }

  get(containerId: ContainerId, ifName: IfName): SandboxRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.pathOf(containerId, ifName), 'utf8')) as SandboxRecord;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  put(rec: SandboxRecord): void {
    writeFileAtomic(this.pathOf(rec.containerId, rec.ifName), JSON.stringify(rec));
  }

  remove(containerId: string, ifName: string): boolean {
    return removeFileDurably(this.pathOf(containerId, ifName));
  }

  /** Every record; unreadable files are reported through `onError` and skipped. */
  list(onError: (file: string, e: unknown) => void = () => undefined): SandboxRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch {
      return [];
    }
    const out: SandboxRecord[] = [];
    for (const n of names) {
      try {
        out.push(JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as SandboxRecord);
      } catch (e) {
        onError(n, e);
      }
    }
    return out;
  }
}
