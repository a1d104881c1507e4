/**
 * plexusd on the Kubernetes source, against the test API server (hack/kube-api) over TLS, with real kubectl as
 * the user's hands and the independent reader: objects are applied with kubectl, pods are added through
 * bin/plexus as a runtime would, and network-status and events are read back with kubectl. The API server
 * listens on a unix socket of this process and is reached at 127.0.0.1:6443 inside the node's netns (where
 * plexusd runs) through a forwarder.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import yaml from 'js-yaml';
import { join } from 'node:path';
import { KubeApiServer, type RbacRule } from '../../hack/kube-api';
import { runAsync } from '../../hack/cluster';
import { expectEventually } from '../helpers/eventually';
import { containerId, PLEXUSCTL_BIN, ROOT, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(90_000);

const NODE = 'node-a';

describe('plexusd on the Kubernetes source', () => {
  const api = new KubeApiServer({ tls: true, bookmarkMs: 300 });
  const dir = mkdtempSync(join(tmpdir(), 'pxks-'));
  const kubeconfig = join(dir, 'kubeconfig'); // plexusd's: its token holds it to deploy/rbac.yaml's ClusterRole
  const adminKubeconfig = join(dir, 'admin.kubeconfig');
  let c: TestCluster;
  const added: Array<{ id: string; netns: string; name: string; uid: string }> = [];

  /** kubectl inside the node's netns (where the API server is reachable). */
  const kubectl = async (...args: string[]) => runAsync('ip', ['netns', 'exec', c.node, 'kubectl', '--kubeconfig', adminKubeconfig, ...args], { timeoutMs: 30_000 });
  const ok = async (...args: string[]) => {
    const r = await kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const source = () => JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'source']).stdout);

  /** A pod applied with kubectl (on this node), then ADDed through bin/plexus with its API UID. */
  async function addPod(name: string, networks: string | undefined) {
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', ...(networks ? { annotations: { 'k8s.v1.cni.cncf.io/networks': networks } } : {}) }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } });
    const uid = (await ok('get', 'pod', name, '-o', 'jsonpath={.metadata.uid}')).trim();
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name, uid } });
    if (out.code === 0) added.push({ id, netns: pod.path, name, uid });
    return { out, uid, pod, id };
  }

  beforeAll(async () => {
    await api.start(join(dir, 'api.sock'));
    c = await TestCluster.start({
      daemon: {
        nodeName: NODE, source: { type: 'kubernetes', kubeconfig, watchSilenceSeconds: 2, backoffMaxMs: 1000, podWaitMs: 2000, requestTimeoutMs: 3000 },
        binDirs: [join(ROOT, 'bin'), '/usr/lib/cni'], ipam: { pools: [{ name: 'claims', cidrs: ['10.71.0.0/24'], blockSize: 28 }] },
      },
      beforeDaemon: async (cluster) => {
        c = cluster;
        await api.exposeIn(cluster.node);
        api.writeKubeconfig(kubeconfig, 'plexusd-token');
        api.writeKubeconfig(adminKubeconfig, 'admin-token');
        // Least privilege, proven: plexusd runs with exactly the rules the deployment grants it.
        const role = (yaml.loadAll(readFileSync(join(ROOT, 'deploy/rbac.yaml'), 'utf8')) as Array<{ kind: string; rules?: RbacRule[] }>).find((d) => d.kind === 'ClusterRole')!;
        api.bindRole('plexusd-token', role.rules!);
        await ok('apply', '-f', join(ROOT, 'crds'));
        await ok('apply', '-f', writeNads());
      },
    });
  });
  afterEach(async () => {
    for (const a of added.splice(0)) await c.cni('DEL', { containerId: a.id, netns: a.netns, pod: { name: a.name, uid: a.uid } });
  });
  afterAll(async () => {
    await c?.destroy();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function writeNads(): string {
    const file = join(dir, 'nads.yaml');
    const nad = (name: string, subnet: string) => ({
      apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'default' },
      spec: { config: JSON.stringify({ cniVersion: '1.0.0', name, type: 'bridge', bridge: `br-${name}`, ipam: c.hostLocal(subnet) }) },
    });
    // purple takes its addresses from plexusd's IPAM, for IPAMClaims (the bridge declares the capability, S21).
    const purple = {
      apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'purple', namespace: 'default' },
      spec: { config: JSON.stringify({ cniVersion: '1.0.0', name: 'purple', type: 'bridge', bridge: 'br-purple', capabilities: { ipamClaimReference: true }, ipam: { type: 'plexus-ipam', socketPath: c.socket, pool: 'claims' } }) },
    };
    writeFileSync(file, [nad('blue', '10.61.0.0/24'), nad('green', '10.62.0.0/24'), purple].map((o) => yaml.dump(o)).join('---\n'));
    return file;
  }

  test('an ADD reads pod and NADs from the API; network-status is one merge patch of pods/status, read back with kubectl; AddedInterface events', async () => {
    const before = api.requests.length;
    const { out, pod } = await addPod('web', 'blue');
    expect({ code: out.code, out: out.stdout }).toMatchObject({ code: 0 });
    expect(run('ip', ['-n', pod.name, '-j', 'addr', 'show', 'net1']).stdout).toMatch(/10\.61\.0\./);
    const status = JSON.parse(await ok('get', 'pod', 'web', '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}'));
    expect(status).toEqual([
      expect.objectContaining({ name: 'cluster', interface: 'eth0', ips: [expect.stringMatching(/^10\.99\.0\./)], default: true }),
      expect.objectContaining({ name: 'default/blue', interface: 'net1', ips: [expect.stringMatching(/^10\.61\.0\./)] }),
    ]);
    // Everything plexusd asked (lists, watches, the pod, status, events) was within deploy/rbac.yaml's rules.
    expect(api.requests.filter((r) => r.status === 403).map((r) => `${r.method} ${r.path}`)).toEqual([]);
    const writes = api.requests.slice(before).filter((r) => r.method === 'PATCH' && r.path === '/api/v1/namespaces/default/pods/web/status');
    expect(writes.map((w) => w.contentType)).toEqual(['application/merge-patch+json']);
    await expectEventually(async () => {
      const events = JSON.parse(await ok('get', 'events', '--field-selector', 'involvedObject.name=web', '-o', 'json')).items as Array<{ reason: string; message: string; type: string }>;
      expect(events.map((e) => `${e.type} ${e.reason} ${e.message}`).sort()).toEqual([
        expect.stringMatching(/^Normal AddedInterface Add eth0 \[10\.99\.0\.\d+\] from cluster$/),
        expect.stringMatching(/^Normal AddedInterface Add net1 \[10\.61\.0\.\d+\] from default\/blue$/),
      ]);
    });
    // DEL clears the annotation (and never needs the API to succeed: see the faults test).
    const a = added.pop()!;
    expect((await c.cni('DEL', { containerId: a.id, netns: a.netns, pod: { name: 'web', uid: a.uid } })).code).toBe(0);
    expect(await ok('get', 'pod', 'web', '-o', 'jsonpath={.metadata.annotations}')).not.toMatch(/network-status/);
  });

  test('hot-plug: kubectl annotate of a running pod attaches and detaches networks; network-status follows, read back with kubectl', async () => {
    const { out, pod } = await addPod('hot', 'blue');
    expect(out.code).toBe(0);
    const ifaces = () => (JSON.parse(run('ip', ['-n', pod.name, '-j', 'link', 'show']).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n !== 'lo').sort();
    const networks = async () => (JSON.parse(await ok('get', 'pod', 'hot', '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}')) as Array<{ name: string; interface: string }>).map((s) => `${s.name} ${s.interface}`);
    await ok('annotate', 'pod', 'hot', '--overwrite', 'k8s.v1.cni.cncf.io/networks=blue,green');
    await expectEventually(() => expect(ifaces()).toEqual(['eth0', 'net1', 'net2']), { timeoutMs: 20_000 });
    await expectEventually(async () => expect(await networks()).toEqual(['cluster eth0', 'default/blue net1', 'default/green net2']));
    await ok('annotate', 'pod', 'hot', '--overwrite', 'k8s.v1.cni.cncf.io/networks=green');
    await expectEventually(() => expect(ifaces()).toEqual(['eth0', 'net2']), { timeoutMs: 20_000 });
    await expectEventually(async () => expect(await networks()).toEqual(['cluster eth0', 'default/green net2']));
    await expectEventually(async () => {
      const events = JSON.parse(await ok('get', 'events', '--field-selector', 'involvedObject.name=hot', '-o', 'json')).items as Array<{ reason: string; message: string }>;
      expect(events.map((e) => `${e.reason} ${e.message}`)).toEqual(expect.arrayContaining(['AddedInterface Add net2 from default/green (hot-plug)', 'RemovedInterface Remove net1 from default/blue (hot-plug)']));
    });
  });

  test('NetworkPolicies and MultiNetworkPolicies from the API (kubectl apply): plexusctl policy shows the ones selecting a pod of this node', async () => {
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pol-a', namespace: 'default', labels: { app: 'db' } }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'i', ports: [{ name: 'pg', containerPort: 5432 }] }] } });
    await ok('apply', '-f', join(ROOT, 'crds/multi-networkpolicy.yaml'));
    const file = join(dir, 'policies.yaml');
    writeFileSync(file, [
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'db-in', namespace: 'default' }, spec: { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 'pg' }] }] } },
      { apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy', metadata: { name: 'blue-out', namespace: 'default', annotations: { 'k8s.v1.cni.cncf.io/policy-for': 'blue' } }, spec: { podSelector: {}, policyTypes: ['Egress'] } },
    ].map((d) => yaml.dump(d)).join('---\n'));
    await ok('apply', '-f', file);
    await expectEventually(() => {
      const view = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'policy', 'default/pol-a']).stdout) as { networks: Array<{ network: string; ingress: { policies: Array<{ policy: string; rules: string[] }> }; egress: { isolated: boolean } }> };
      expect(view.networks.map((n) => [n.network, n.ingress.policies.map((p) => `${p.policy}: ${p.rules.join('; ')}`), n.egress.isolated])).toEqual([
        ['cluster', ['default/db-in: allow from pods {app=api} in namespace default on TCP port named pg'], false],
        ['default/blue', [], true],
      ]);
    }, { timeoutMs: 20_000 });
    await ok('delete', 'networkpolicy', 'db-in');
    await expectEventually(() => expect(JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'policy', 'default/pol-a']).stdout).networks[0].ingress.isolated).toBe(false), { timeoutMs: 20_000 });
  });

  test('IPAMClaim: the claim\'s status gets the addresses; a recreated pod gets them again; deleting the claim frees them', async () => {
    const claim = 'vm-a.purple.net1';
    writeFileSync(join(dir, 'claim.yaml'), yaml.dump({ apiVersion: 'k8s.cni.cncf.io/v1alpha1', kind: 'IPAMClaim', metadata: { name: claim, namespace: 'default' }, spec: { network: 'purple', interface: 'net1' } }));
    await ok('apply', '-f', join(dir, 'claim.yaml'));
    await expectEventually(() => expect(source().ipamclaims.objects).toBe(1));
    const networks = JSON.stringify([{ name: 'purple', 'ipam-claim-reference': claim }]);
    const first = await addPod('vm-a', networks);
    expect(first.out.code).toBe(0);
    const addr = (netns: string) => (JSON.parse(run('ip', ['-n', netns, '-j', '-4', 'addr', 'show', 'net1']).stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)[0]!.addr_info[0]!;
    const a1 = addr(first.pod.name);
    expect(a1.local).toMatch(/^10\.71\.0\./);
    await expectEventually(async () => expect(JSON.parse(await ok('get', 'ipamclaim', claim, '-o', 'jsonpath={.status.ips}'))).toEqual([`${a1.local}/${a1.prefixlen}`]));
    // The pod goes (its sandbox DELed, the object deleted) and comes back as a new pod: the same address.
    const gone = added.pop()!;
    expect((await c.cni('DEL', { containerId: gone.id, netns: gone.netns, pod: { name: 'vm-a', uid: gone.uid } })).code).toBe(0);
    await ok('delete', 'pod', 'vm-a', '--wait=false');
    const second = await addPod('vm-a', networks);
    expect(second.uid).not.toBe(gone.uid);
    expect(second.out.code).toBe(0);
    expect(addr(second.pod.name).local).toBe(a1.local);
    const again = added.pop()!;
    expect((await c.cni('DEL', { containerId: again.id, netns: again.netns, pod: { name: 'vm-a', uid: again.uid } })).code).toBe(0);
    // Deleting the claim frees the address (S38).
    await ok('delete', 'ipamclaim', claim);
    await expectEventually(() => expect(c.log()).toMatch(new RegExp(`"claim":"default/${claim.replace(/\./g, '\\.')}","released":\\[[^\\]]*"${a1.local.replace(/\./g, '\\.')}`)));
  });

  test('a pod of another UID is 109; a pod the API does not have is 11 (try again); a failed ADD records a Warning naming the network', async () => {
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'old', namespace: 'default' }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'i' }] } });
    const pod = c.makePod();
    const wrong = await c.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name: 'old', uid: '11111111-2222-4333-8444-555555555555' } });
    expect({ code: wrong.json?.code, msg: wrong.json?.msg }).toEqual({ code: 109, msg: expect.stringMatching(/default\/old: runtime UID 11111111-2222-4333-8444-555555555555 differs from source UID/) });
    const missing = await c.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name: 'ghost' } });
    expect({ code: missing.json?.code, msg: missing.json?.msg }).toEqual({ code: 11, msg: expect.stringMatching(/pod default\/ghost: not found in the API server/) });
    const { out } = await addPod('lost', 'nosuchnet');
    expect(out.json?.code).toBe(100);
    await expectEventually(async () => {
      const events = JSON.parse(await ok('get', 'events', '--field-selector', 'involvedObject.name=lost,type=Warning', '-o', 'json')).items as Array<{ reason: string; message: string }>;
      expect(events).toEqual([expect.objectContaining({ reason: 'AttachFailed', message: expect.stringMatching(/nosuchnet/) })]);
    });
  });

  test('informers that never stop: a closed watch resumes without a relist; 410 relists and reports what went in the gap; a silent watch is relisted in bounded time; errors back off and recover', async () => {
    const s0 = source();
    expect(s0.nads).toMatchObject({ synced: true, objects: 3 });
    // Closed: the next watch resumes from the last resourceVersion (no list), and sees a NAD made after.
    api.closeWatches();
    await ok('apply', '-f', nadFile('red', '10.63.0.0/24'));
    await expectEventually(() => expect(source().nads.objects).toBe(4));
    expect(source().nads.lists).toBe(s0.nads.lists);
    expect(source().nads.watches).toBeGreaterThan(s0.nads.watches);
    expect((await addPod('p-red', 'red')).out.code).toBe(0);

    // Gone: red deleted while the daemon cannot watch (RBAC refuses it: it backs off and retries), and the
    // history compacted meanwhile; the watch it resumes answers 410, and the relist reports red deleted.
    api.deny('watch', 'network-attachment-definitions');
    api.closeWatches();
    await ok('delete', 'nad', 'red', '--wait=false');
    api.store.compact();
    await expectEventually(() => expect(source().nads.failures).toBeGreaterThanOrEqual(1));
    api.allow('watch', 'network-attachment-definitions');
    await expectEventually(() => expect(source().nads.objects).toBe(3), { timeoutMs: 20_000 });
    expect(source().nads.relistsAfterGone).toBeGreaterThanOrEqual(1);
    expect(source().nads.failures).toBeGreaterThanOrEqual(1);
    expect((await addPod('p-gone', 'red')).out.json?.code).toBe(100);

    // Silent: every watch stops receiving anything (no bookmarks either): relisted within watchSilenceSeconds.
    api.silenceWatches();
    await ok('apply', '-f', nadFile('pink', '10.64.0.0/24'));
    await expectEventually(() => expect(source().nads.objects).toBe(4), { timeoutMs: 10_000 });
    expect(source().nads.relistsAfterSilence).toBeGreaterThanOrEqual(1);
  });

  test('after a node reboot, 200 pods ADDed at once while the pod watch is cut and refused, and the API server fails now and then: all answered, each attached once', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `boot-${i}`);
    // The pod watch is cut and cannot come back (RBAC refuses list and watch for now) before the pods exist, so
    // the cache cannot have them and every ADD must ask; the server fails GETs of those pods and status writes
    // for a while.
    api.deny('list', 'pods');
    api.deny('watch', 'pods');
    api.closeWatches();
    api.failNext(500, { method: 'GET', pathIncludes: '/pods/boot-', count: 6 });
    api.failNext(503, { method: 'PATCH', pathIncludes: '/status', count: 6 });
    const before = api.requests.length;
    const uids = names.map((name) => api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', annotations: { 'k8s.v1.cni.cncf.io/networks': 'blue' } }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'i' }] } }).metadata.uid!);
    const sandboxes = names.map(() => ({ pod: c.makePod(), id: containerId() }));
    let outs;
    try {
      outs = await Promise.all(names.map((name, i) => c.cni('ADD', { containerId: sandboxes[i]!.id, netns: sandboxes[i]!.pod.path, pod: { name, uid: uids[i]! } })));
    } finally {
      api.allow('list', 'pods');
      api.allow('watch', 'pods');
    }
    for (const [i, out] of outs.entries()) {
      expect({ pod: names[i], code: out.code, out: out.code ? out.stdout : '' }).toEqual({ pod: names[i], code: 0, out: '' });
      added.push({ id: sandboxes[i]!.id, netns: sandboxes[i]!.pod.path, name: names[i]!, uid: uids[i]! });
    }
    // Each pod exactly once: its interfaces, one record, and network-status naming both attachments.
    for (const [i, name] of names.entries()) {
      const links = (JSON.parse(run('ip', ['-n', sandboxes[i]!.pod.name, '-j', 'link', 'show']).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
      expect({ name, links }).toEqual({ name, links: ['eth0', 'lo', 'net1'] });
      const status = api.store.get(api.resources.find('', 'v1', 'pods'), 'default', name).metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'];
      expect({ name, status: (JSON.parse(status ?? '[]') as Array<{ name: string }>).map((s) => s.name) }).toEqual({ name, status: ['cluster', 'default/blue'] });
    }
    const records = readdirSync(join(c.stateDir, 'records'));
    for (const s of sandboxes) expect(records.filter((f) => f.startsWith(s.id))).toEqual([`${s.id}@eth0.json`]);
    expect(api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status') && r.path.includes('/pods/boot-') && r.status === 200)).toHaveLength(200);
    // The faults did happen (and were all used up).
    const during = api.requests.slice(before);
    expect(during.filter((r) => r.method === 'GET' && r.path.includes('/pods/boot-') && r.status === 500)).toHaveLength(6);
    expect(during.filter((r) => r.method === 'PATCH' && r.status === 503)).toHaveLength(6);
  }, 300_000); // 200 sandboxes and ADDs on two cores: about 75 s here

  test('network-status: a conflict is retried; a pod deleted before its status is written is no error; DEL needs no API', async () => {
    api.failNext(409, { method: 'PATCH', pathIncludes: '/pods/p-conf/status' });
    const { out } = await addPod('p-conf', 'blue');
    expect(out.code).toBe(0);
    expect(await ok('get', 'pod', 'p-conf', '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}')).toMatch(/default\/blue/);
    api.failNext(404, { method: 'PATCH', pathIncludes: '/pods/p-gone2/status' });
    expect((await addPod('p-gone2', 'blue')).out.code).toBe(0);
    // The API refuses everything: DEL still succeeds.
    api.acceptTokens(['nobody-has-this']);
    try {
      for (const a of added.splice(0)) expect((await c.cni('DEL', { containerId: a.id, netns: a.netns, pod: { name: a.name, uid: a.uid } })).code).toBe(0);
    } finally {
      api.acceptTokens(undefined);
    }
  });

  function nadFile(name: string, subnet: string): string {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({
      apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'default' },
      spec: { config: JSON.stringify({ cniVersion: '1.0.0', name, type: 'bridge', bridge: `br-${name}`, ipam: c.hostLocal(subnet) }) },
    }));
    return file;
  }
});
