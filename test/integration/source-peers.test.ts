/**
 * Source.peers: the pods of other nodes as NetworkPolicy peers need them, from both sources. The Kubernetes
 * source against the test API server (a second pods reflector, `spec.nodeName!=<this node>`); the file source
 * with a statusDir two nodes share (each writes its pods' network-status, reads the other's).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { KubeApiServer } from '../../hack/kube-api';
import { FileSource } from '../../meta-plugin/source/file-source';
import { KubeClient } from '../../meta-plugin/source/kube/client';
import { KubeSource } from '../../meta-plugin/source/kube-source';
import type { NetworkStatus } from '../../meta-plugin/status/network-status';
import { expectEventually } from '../helpers/eventually';

jest.setTimeout(60_000);

const log = pino({ level: 'silent' });
const status = (ip: string, blue?: string): NetworkStatus[] => [
  { name: 'k8s-pod-network', interface: 'eth0', ips: [ip], default: true, dns: {} },
  ...(blue ? [{ name: 'default/blue', interface: 'net1', ips: [blue], default: false, dns: {} }] : []),
];

describe('the Kubernetes source', () => {
  const api = new KubeApiServer();
  const dir = mkdtempSync(join(tmpdir(), 'pxpeers-'));
  let kubeconfig: string;
  const sources: KubeSource[] = [];
  const open = async (peers: boolean) => {
    const s = new KubeSource({ type: 'kubernetes', kubeconfig, podWaitMs: 1000, requestTimeoutMs: 3000, watchSilenceSeconds: 5, backoffMaxMs: 500 }, 'node-a', log, { peers });
    sources.push(s);
    await s.start();
    return s;
  };
  const pod = (name: string, node: string, labels: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels, ...extra },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 8080 }] }] },
  });

  beforeAll(async () => {
    await api.start();
    kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
    api.apply(pod('mine', 'node-a', { app: 'a' }));
    api.apply(pod('theirs', 'node-b', { app: 'b' }, { annotations: { 'k8s.v1.cni.cncf.io/network-status': JSON.stringify(status('10.244.1.5/32', '10.10.0.9/24')) } }));
    // The kubelet's part: status.podIPs, through the status subresource as it writes them.
    await new KubeClient(kubeconfig, 5000).must('PATCH', '/api/v1/namespaces/default/pods/theirs/status', { body: { status: { podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd00:244::1:5' }] } }, contentType: 'application/merge-patch+json' });
  });
  afterAll(async () => {
    for (const s of sources) await s.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('watches every other node\'s pods with their labels, ports, podIPs and network-status; never this node\'s', async () => {
    const s = await open(true);
    expect(s.peers()).toEqual([{
      pod: { namespace: 'default', name: 'theirs', annotations: {}, labels: { app: 'b' }, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
      node: 'node-b', podIPs: ['10.244.1.5', 'fd00:244::1:5'], status: status('10.244.1.5/32', '10.10.0.9/24'),
    }]);
    expect(s.listPods().map((p) => p.name)).toEqual(['mine']);
    let changes = 0;
    s.onChange(() => changes++);
    api.apply(pod('theirs', 'node-b', { app: 'c' }));
    await expectEventually(() => expect(s.peers().map((p) => p.pod.labels)).toEqual([{ app: 'c' }]), { timeoutMs: 10_000 });
    expect(changes).toBeGreaterThan(0);
    // A finished pod (a Job's) keeps its addresses in the API; its node may have reused them: it has none here.
    await new KubeClient(kubeconfig, 5000).must('PATCH', '/api/v1/namespaces/default/pods/theirs/status', { body: { status: { phase: 'Succeeded' } }, contentType: 'application/merge-patch+json' });
    await expectEventually(() => expect(s.peers().map((p) => [p.podIPs, p.status])).toEqual([[undefined, undefined]]), { timeoutMs: 10_000 });
  });

  test('peersListed: false while the other nodes\' pods cannot be listed, then true, and listeners hear of it', async () => {
    api.failNext(500, { method: 'GET', queryIncludes: 'spec.nodeName!=node-a', count: 1_000_000 });
    const s = new KubeSource({ type: 'kubernetes', kubeconfig, podWaitMs: 1000, requestTimeoutMs: 1000, watchSilenceSeconds: 5, backoffMaxMs: 200 }, 'node-a', log, { peers: true });
    sources.push(s);
    let heard = 0;
    s.onChange(() => heard++);
    await s.start(); // gives up waiting after requestTimeoutMs
    expect({ policies: s.listed('NetworkPolicy'), peersListed: s.peersListed(), peers: s.peers() }).toEqual({ policies: true, peersListed: false, peers: [] });
    await new Promise((r) => setTimeout(r, 100)); // the burst of the first lists is heard
    const before = heard;
    api.clearFailures();
    await expectEventually(() => expect(s.peersListed()).toBe(true), { timeoutMs: 10_000 });
    expect(s.peers().map((p) => p.pod.name)).toEqual(['theirs']);
    await expectEventually(() => expect(heard).toBeGreaterThan(before), { timeoutMs: 2000 });
  });

  test('where policy is not enforced, no other node\'s pod is watched', async () => {
    const s = await open(false);
    expect(s.peers()).toEqual([]);
    expect(s.peersListed()).toBe(true); // nothing to list
  });
});

describe('the file source with a shared statusDir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pxpeersf-'));
  const manifests = join(dir, 'manifests');
  const statusDir = join(dir, 'status');
  const sources: FileSource[] = [];
  const open = async (node: string) => {
    const s = new FileSource(manifests, log, 200, { statusDir, nodeName: node });
    sources.push(s);
    await s.start();
    return s;
  };
  afterAll(async () => {
    for (const s of sources) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each node writes its pods\' network-status there and reads the other\'s, with the labels the manifests give now', async () => {
    require('node:fs').mkdirSync(manifests, { recursive: true });
    const write = (labels: Record<string, string>) => writeFileSync(join(manifests, 'pods.yaml'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'default', labels } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p2', namespace: 'default' } },
    ] }));
    write({ app: 'one' });
    const [n1, n2] = [await open('n1'), await open('n2')];
    expect([n1.peersListed(), n2.peersListed()]).toEqual([true, true]); // read with the manifests
    await n1.publishStatus({ namespace: 'default', name: 'p1' }, status('10.244.0.2/32'));
    await n2.publishStatus({ namespace: 'default', name: 'p2' }, status('10.244.1.2/32'));
    expect(readdirSync(statusDir).sort()).toEqual(['default_p1.json', 'default_p2.json']);
    await expectEventually(() => {
      expect(n1.peers().map((p) => [p.node, p.pod.name, p.status?.[0]?.ips])).toEqual([['n2', 'p2', ['10.244.1.2/32']]]);
      expect(n2.peers().map((p) => [p.node, p.pod.name, p.pod.labels])).toEqual([['n1', 'p1', { app: 'one' }]]);
    }, { timeoutMs: 5000 });
    write({ app: 'two' });
    await expectEventually(() => expect(n2.peers()[0]?.pod.labels).toEqual({ app: 'two' }), { timeoutMs: 5000 });
    await n1.publishStatus({ namespace: 'default', name: 'p1' }, null);
    await expectEventually(() => expect(n2.peers()).toEqual([]), { timeoutMs: 5000 });
    // p2 moves to n1 (a StatefulSet's pod): n2's late clearing of its status must not remove n1's.
    await n1.publishStatus({ namespace: 'default', name: 'p2' }, status('10.244.0.9/32'));
    await n2.publishStatus({ namespace: 'default', name: 'p2' }, null);
    expect(readdirSync(statusDir)).toEqual(['default_p2.json']);
    await expectEventually(() => expect(n2.peers().map((p) => [p.node, p.pod.name])).toEqual([['n1', 'p2']]), { timeoutMs: 5000 });
  });
});
