/**
 * The kubelet's PodResources gRPC server on a unix socket, for tests: built from the full v1 API
 * (test/fixtures/podresources-v1.proto), serving the pods it is given with CPU, memory and NUMA details the
 * product does not read. It counts calls (to show List is not called once per ADD) and can play an older
 * kubelet (no Get: UNIMPLEMENTED) or a slow one.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface FakePod {
  namespace: string;
  name: string;
  /** Per container: resource name -> device IDs. */
  containers: Array<{ name: string; devices: Record<string, string[]> }>;
}

export class FakeKubelet {
  readonly calls = { List: 0, Get: 0, GetAllocatableResources: 0 };
  pods: FakePod[] = [];
  /** Play a kubelet before 1.27 (UNIMPLEMENTED), or 1.27-1.33 with the KubeletPodResourcesGet gate off. */
  getMode: 'served' | 'unimplemented' | 'disabled' = 'served';
  delayMs = 0;
  private readonly server = new grpc.Server();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(readonly socket: string) {}

  static async start(socket: string): Promise<FakeKubelet> {
    const k = new FakeKubelet(socket);
    const def = protoLoader.loadSync(join(__dirname, '../fixtures/podresources-v1.proto'), { keepCase: true, longs: String, defaults: true });
    const v1 = (grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: { service: grpc.ServiceDefinition } } }).v1;
    k.server.addService(v1.PodResourcesLister.service, {
      List: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => k.answer('List', cb, () => ({ pod_resources: k.pods.map(wire) })),
      Get: (call: grpc.ServerUnaryCall<{ pod_name: string; pod_namespace: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (k.getMode !== 'served') {
          k.calls.Get++;
          const unimplemented = k.getMode === 'unimplemented';
          cb({ code: unimplemented ? grpc.status.UNIMPLEMENTED : grpc.status.UNKNOWN, details: unimplemented ? 'unknown method Get' : 'PodResources API Get method disabled' }, null);
          return;
        }
        k.answer('Get', cb, () => {
          const pod = k.pods.find((p) => p.name === call.request.pod_name && p.namespace === call.request.pod_namespace);
          if (!pod) throw Object.assign(new Error(`pod ${call.request.pod_namespace}/${call.request.pod_name} not found`), { code: grpc.status.NOT_FOUND });
          return { pod_resources: wire(pod) };
        });
      },
      GetAllocatableResources: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => k.answer('GetAllocatableResources', cb, () => ({ devices: [], cpu_ids: [0, 1] })),
    });
    await new Promise<void>((resolve, reject) =>
      k.server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    return k;
  }

  private answer(method: keyof FakeKubelet['calls'], cb: grpc.sendUnaryData<unknown>, body: () => unknown): void {
    this.calls[method]++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      try {
        cb(null, body());
      } catch (e) {
        cb({ code: (e as { code?: number }).code ?? grpc.status.INTERNAL, details: (e as Error).message }, null);
      }
    }, this.delayMs);
    this.timers.add(timer);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server.forceShutdown();
  }
}

/** A pod as the kubelet sends it: with exclusive CPUs, memory and NUMA topology. */
function wire(p: FakePod) {
  return {
    name: p.name,
    namespace: p.namespace,
    containers: p.containers.map((c) => ({
      name: c.name,
      devices: Object.entries(c.devices).map(([resource_name, device_ids]) => ({ resource_name, device_ids, topology: { nodes: [{ ID: 0 }] } })),
      cpu_ids: [2, 3],
      memory: [{ memory_type: 'hugepages-2Mi', size: 1073741824, topology: { nodes: [{ ID: 0 }] } }],
    })),
  };
}
