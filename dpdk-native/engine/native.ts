/**
 * The dpdk-native addon (addon/binding.c) as plexus-dataplane sees it. Loaded from beside the running bundle
 * (bin/dpdk_native.node) or from the node-gyp build directory when run from source.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { EnginePolicyCounters } from '../policy-wire';

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
  /** Packets MultiNetworkPolicy denied (addon/policy.c). */
  policyDropped: number;
}

export interface NativeFlowEvent {
  /** CLOCK_MONOTONIC nanoseconds. */
  timeNs: number;
  network: number;
  len: number;
  /** 16 bytes, IPv4 as ::ffff:a.b.c.d */
  src: Buffer;
  dst: Buffer;
  sport: number;
  dport: number;
  proto: number;
  /** 1 forwarded, 2 dropped */
  verdict: number;
  /** 0 none, 1 egress, 2 ingress, 3 spoofed source */
  reason: number;
  /** 1 IPv6, 4 a tracked connection cut */
  flags: number;
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
  /** addon/policy.h's blob (dpdk-native/policy-wire.ts makes it); an empty buffer: no policy. */
  setPolicy(blob: Buffer): void;
  policyCounters(network: number): EnginePolicyCounters;
  /** The flow events the poll loop left since the last call (at most 1024). */
  policyEvents(): NativeFlowEvent[];
  shutdown(): void;
}

export function loadNative(): NativeEngine {
  const candidates = [join(__dirname, 'dpdk_native.node'), join(__dirname, '../build/Release/dpdk_native.node')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`the dpdk-native addon is not built (looked for ${candidates.join(', ')}): run make build`);
  return createRequire(__filename)(file) as NativeEngine;
}
