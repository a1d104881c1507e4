/**
 * plexusd's side of plexus-dataplane's control API (engine/main.ts): HTTP/1.1 on the engine's root-only unix
 * socket, every call bounded by a timeout. An engine that does not answer is a 111 for ADD, and for DEL a
 * port left to the next reconcile (the daemon never blocks a pod's deletion on the engine).
 */
import { PlexusError } from '../core/errors';
import { jsonOf, unixHttp } from '../core/unix-http';
import type { EnginePolicy, EnginePolicyCounters } from './policy-wire';
import type { PortSpec } from './ports';

export interface EnginePort extends PortSpec {
  /** A port of the engine's own configuration (dpdk.uplinks): not the daemon's to reconcile. */
  uplink?: boolean;
  linkUp: boolean;
  counters?: { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number; txDropped: number; flooded: number; faults: number; policyDropped: number };
}

/** A flow event of the engine's policy (`GET /v1/flows`). */
export interface EngineFlow {
  seq: number;
  /** Unix epoch, milliseconds. */
  time: number;
  /** The engine network. */
  network: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  verdict: 'FORWARDED' | 'DROPPED';
  reason?: 'POLICY_DENIED_EGRESS' | 'POLICY_DENIED_INGRESS' | 'INVALID_SOURCE_IP';
  v6: boolean;
  cut?: true;
  len: number;
}

export class EngineClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 5000,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    try {
      const r = await unixHttp(this.socketPath, method, path, { body, timeoutMs: this.timeoutMs });
      return { status: r.status, json: jsonOf(r.body) };
    } catch (e) {
      throw new PlexusError('KernelFailure', `DPDK engine at ${this.socketPath} unreachable: ${(e as Error).message}`, { cause: e });
    }
  }

  private static refused(what: string, r: { status: number; json: unknown }): PlexusError {
    const msg = (r.json as { msg?: string } | undefined)?.msg ?? JSON.stringify(r.json);
    return new PlexusError(r.status === 409 ? 'InterfaceConflict' : r.status === 400 ? 'InvalidConfig' : 'KernelFailure', `DPDK engine: ${what}: ${msg}`);
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.call('GET', '/healthz')).status === 200;
    } catch {
      return false;
    }
  }

  async put(spec: PortSpec): Promise<void> {
    const r = await this.call('PUT', `/v1/ports/${encodeURIComponent(spec.name)}`, spec);
    if (r.status !== 200 && r.status !== 201) throw EngineClient.refused(`create port ${spec.name}`, r);
  }

  async remove(name: string): Promise<void> {
    const r = await this.call('DELETE', `/v1/ports/${encodeURIComponent(name)}`);
    if (r.status !== 204) throw EngineClient.refused(`remove port ${name}`, r);
  }

  async putPolicy(policy: EnginePolicy): Promise<void> {
    const r = await this.call('PUT', '/v1/policy', policy);
    if (r.status !== 200) throw EngineClient.refused('set the policy', r);
  }

  /** The revision of the policy the engine holds (null: none since it started). */
  async policyRevision(): Promise<string | null> {
    const r = await this.call('GET', '/v1/policy');
    if (r.status !== 200) throw EngineClient.refused('read the policy', r);
    return (r.json as { revision: string | null }).revision;
  }

  /** The verdict counters, by engine network. */
  async policyCounters(): Promise<Record<string, EnginePolicyCounters>> {
    const r = await this.call('GET', '/v1/policy');
    if (r.status !== 200) throw EngineClient.refused('read the policy', r);
    return (r.json as { counters: Record<string, EnginePolicyCounters> }).counters;
  }

  /** Flow events after `seq` (dpdk-native/engine/main.ts's EngineFlow), oldest first. */
  async flowsAfter(seq: number): Promise<EngineFlow[]> {
    const r = await this.call('GET', `/v1/flows?after=${seq}`);
    if (r.status !== 200 || !Array.isArray(r.json)) throw EngineClient.refused('read flows', r);
    return r.json as EngineFlow[];
  }

  async ports(): Promise<EnginePort[]> {
    const r = await this.call('GET', '/v1/ports');
    if (r.status !== 200 || !Array.isArray(r.json)) throw EngineClient.refused('list ports', r);
    return r.json as EnginePort[];
  }
}
