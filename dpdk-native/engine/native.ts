/**
 * The dpdk-native addon (addon/binding.c) as plexus-dataplane sees it. Loaded from beside the running bundle
 * (bin/dpdk_native.node) or from the node-gyp build directory when run from source.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export interface NativePort {
  name: string;
  portId: number;
  network: number;
  queues: number;
  linkUp: boolean;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
  flooded: number;
  /** Bursts the fault guard abandoned (a memif peer torn down under the poll loop; addon/engine.c). */
  faults: number;
}

export interface NativeStats {
  loops: number;
  idleSleeps: number;
  learned: number;
  /** Received on all ports. */
  packets: number;
  /** TSC cycles of the poll loop's iterations that received packets (OVS's "processing cycles"). */
  busyCycles: number;
  tscHz: number;
  ports: number;
  sleepUs: number;
}

/** Errors thrown by the addon carry the engine's message and the errno. */
export interface NativeEngine {
  init(args: string[], mbufs: number, maxSleepUs: number): void;
  addPort(name: string, devargs: string, network: number, queues: number): void;
  removePort(name: string): void;
  ports(): NativePort[];
  stats(): NativeStats;
  shutdown(): void;
}

export function loadNative(): NativeEngine {
  const candidates = [join(__dirname, 'dpdk_native.node'), join(__dirname, '../build/Release/dpdk_native.node')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`the dpdk-native addon is not built (looked for ${candidates.join(', ')}): run make build`);
  return createRequire(__filename)(file) as NativeEngine;
}
