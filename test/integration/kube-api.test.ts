/**
 * The test API server (hack/kube-api) against real kubectl, the independent client: if kubectl can apply,
 * get, annotate, patch and delete through it and sees what a real server would answer, the informers and
 * writers tested against it are tested against the protocol. Watches are read raw over HTTP, as a client
 * library reads them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { KubeApiServer } from '../../hack/kube-api';
import { parseDaemonConfig } from '../../meta-plugin/daemon/config';
import { runAsync } from '../../hack/cluster';
import { ROOT } from '../helpers/plexus-harness';

jest.setTimeout(60_000);

interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the test API server, driven by kubectl', () => {
  const api = new KubeApiServer({ historyLimit: 50, bookmarkMs: 200 });
  let dir = '';
  let kubeconfig = '';
  const applied = { crds: '', examples: '' };

  // Asynchronous: the server answers from this process's event loop.
  const kubectl = async (...args: string[]): Promise<KubectlResult> => {
    const r = await runAsync('kubectl', ['--kubeconfig', kubeconfig, ...args], { timeoutMs: 30_000 });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = async (...args: string[]): Promise<string> => {
    const r = await kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pxk-'));
    await api.start();
    kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
    // Every test starts from the project's CRDs and examples, applied as a user would.
    applied.crds = await ok('apply', '-f', join(ROOT, 'crds'));
    applied.examples = await ok('apply', '-f', join(ROOT, 'examples/manifests'));
  });
  afterAll(async () => {
    await api.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('kubectl apply of crds/ and examples/manifests creates every object; applying again changes nothing; get reads them back', async () => {
    expect(applied.crds).toMatch(/customresourcedefinition.apiextensions.k8s.io\/network-attachment-definitions.k8s.cni.cncf.io created/);
    // The deployment: RBAC, the ConfigMap and the DaemonSet parse and apply as kubectl sees them.
    expect(await ok('apply', '-f', join(ROOT, 'deploy'))).toMatch(/daemonset.apps\/plexus created[\s\S]*clusterrole.rbac.authorization.k8s.io\/plexus created/);
    // The ConfigMap's plexusd.yaml is a config plexusd takes (as read back through the API).
    const cm = JSON.parse(await ok('get', 'configmap', 'plexusd', '-n', 'kube-system', '-o', 'json')) as { data: Record<string, string> };
    const conf = parseDaemonConfig(yaml.load(cm.data['plexusd.yaml'] ?? ''));
    expect([conf.source.type, conf.ipam.store?.type, conf.install?.cniBinDir]).toEqual(['kubernetes', 'kubernetes', '/host/opt/cni/bin']);
    const ds = JSON.parse(await ok('get', 'ds', 'plexus', '-n', 'kube-system', '-o', 'json'));
    expect(ds.spec.template.spec.serviceAccountName).toBe('plexus');
    const rules = JSON.parse(await ok('get', 'clusterrole', 'plexus', '-o', 'json')).rules as Array<{ resources: string[]; verbs: string[] }>;
    expect(rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${res}`))).sort()).toEqual([
      'create events', 'create ipamrecords', 'delete ipamrecords', 'get ipamclaims', 'get ipamrecords', 'get ippools', 'get multi-networkpolicies',
      'get network-attachment-definitions', 'get networkpolicies', 'get pods', 'list ipamclaims', 'list ipamrecords', 'list ippools',
      'list multi-networkpolicies', 'list namespaces', 'list network-attachment-definitions', 'list networkpolicies', 'list pods',
      'patch ipamclaims/status', 'patch pods/status', 'update ipamrecords', 'watch ipamclaims', 'watch ippools', 'watch multi-networkpolicies',
      'watch namespaces', 'watch network-attachment-definitions', 'watch networkpolicies', 'watch pods',
    ]);
    const first = applied.examples;
    expect(first).toMatch(/networkattachmentdefinition.k8s.cni.cncf.io\/storage created/);
    expect(first).toMatch(/pod\/upf created/);
    expect(first).toMatch(/ippool.plexus.io\/\S+ created/);
    const rv = api.store.resourceVersion;
    const again = (await ok('apply', '-f', join(ROOT, 'examples/manifests')));
    expect(again).toMatch(/pod\/upf unchanged/);
    expect(again).toMatch(/networkattachmentdefinition.k8s.cni.cncf.io\/storage unchanged/);
    expect(api.store.resourceVersion).toBe(rv);
    expect((await ok('get', 'net-attach-def', '-o', 'name')).trim().split('\n')).toEqual(expect.arrayContaining(['networkattachmentdefinition.k8s.cni.cncf.io/storage', 'networkattachmentdefinition.k8s.cni.cncf.io/telco-data']));
    expect(JSON.parse((await ok('get', 'nad', 'storage', '-o', 'json'))).spec.config).toMatch(/"type": "bridge"/);
    expect((await ok('get', 'pod', 'upf', '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/networks}'))).toMatch(/"interface": "n6"/);
    // The real server's refusals, as kubectl reports them.
    expect((await kubectl('get', 'pod', 'nope')).stderr).toMatch(/pods "nope" not found/);
    expect((await kubectl('get', 'pods', '-n', 'nowhere', '-o', 'name')).stdout).toBe('');
  });

  test('kubectl annotate (merge patch), patch --type merge|json|strategic, label selectors, the status subresource, delete', async () => {
    await ok('annotate', 'pod', 'web', 'k8s.v1.cni.cncf.io/networks=storage');
    expect((await ok('get', 'pod', 'web', '-o', 'jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/networks}'))).toBe('storage');
    expect(api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/pods/web')).at(-1)!.contentType).toBe('application/merge-patch+json');
    await ok('label', 'pod', 'web', 'tier=front');
    await ok('label', 'pod', 'cache', 'tier=back');
    expect((await ok('get', 'pods', '-l', 'tier in (front,back)', '-o', 'name')).trim().split('\n').sort()).toEqual(['pod/cache', 'pod/web']);
    expect((await ok('get', 'pods', '-l', 'tier!=front,tier', '-o', 'name')).trim()).toBe('pod/cache');
    expect((await ok('get', 'pods', '--field-selector', 'metadata.name=upf', '-o', 'name')).trim()).toBe('pod/upf');
    expect((await kubectl('get', 'pods', '--field-selector', 'spec.bogus=x')).stderr).toMatch(/field label not supported: spec.bogus/);

    // Strategic merge patch on a Pod merges containers by name; on a custom resource it is refused with 415.
    await ok('patch', 'pod', 'web', '--type', 'strategic', '-p', '{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/pause:3.9"}]}}');
    expect(JSON.parse((await ok('get', 'pod', 'web', '-o', 'json'))).spec.containers).toEqual([{ name: 'web', image: 'registry.k8s.io/pause:3.9' }]);
    expect((await kubectl('patch', 'nad', 'storage', '--type', 'strategic', '-p', '{"metadata":{"labels":{"a":"b"}}}')).stderr).toMatch(/415|UnsupportedMediaType|unknown format/);
    await ok('patch', 'nad', 'storage', '--type', 'merge', '-p', '{"metadata":{"labels":{"tier":"gold"}}}');
    expect((await ok('get', 'nad', '-l', 'tier=gold', '-o', 'name')).trim()).toBe('networkattachmentdefinition.k8s.cni.cncf.io/storage');
    // JSON patch with a failing test: 422 and nothing changes.
    const before = (await ok('get', 'nad', 'storage', '-o', 'jsonpath={.metadata.resourceVersion}'));
    const failed = (await kubectl('patch', 'nad', 'storage', '--type', 'json', '-p', '[{"op":"test","path":"/metadata/labels/tier","value":"silver"},{"op":"replace","path":"/metadata/labels/tier","value":"bronze"}]'));
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/testing value \/metadata\/labels\/tier failed/);
    expect((await ok('get', 'nad', 'storage', '-o', 'jsonpath={.metadata.resourceVersion}'))).toBe(before);
    await ok('patch', 'nad', 'storage', '--type', 'json', '-p', '[{"op":"test","path":"/metadata/labels/tier","value":"gold"},{"op":"replace","path":"/metadata/labels/tier","value":"bronze"}]');
    expect((await ok('get', 'nad', 'storage', '-o', 'jsonpath={.metadata.labels.tier}'))).toBe('bronze');

    // The status subresource: status and annotations change, the spec does not; the main resource ignores status.
    await ok('patch', 'pod', 'upf', '--subresource', 'status', '--type', 'merge', '-p', '{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/network-status":"[]"}},"status":{"phase":"Running"},"spec":{"nodeName":"elsewhere"}}');
    const upf = JSON.parse((await ok('get', 'pod', 'upf', '-o', 'json')));
    expect(upf.status.phase).toBe('Running');
    expect(upf.metadata.annotations['k8s.v1.cni.cncf.io/network-status']).toBe('[]');
    expect(upf.spec.nodeName).toBeUndefined();
    await ok('patch', 'pod', 'upf', '--type', 'merge', '-p', '{"status":{"phase":"Failed"}}');
    expect((await ok('get', 'pod', 'upf', '-o', 'jsonpath={.status.phase}'))).toBe('Running');

    // A pod without containers is refused as the real server refuses it.
    writeFileSync(join(dir, 'bare.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\n');
    expect((await kubectl('create', '-f', join(dir, 'bare.yaml'))).stderr).toMatch(/Pod "bare" is invalid: spec.containers: Required value/);
    expect((await ok('delete', 'pod', 'cache'))).toMatch(/pod "cache" deleted/);
    expect((await kubectl('get', 'pod', 'cache')).stderr).toMatch(/not found/);
  });

  test('updates are compare-and-swap on resourceVersion: kubectl replace of a stale copy is 409 and changes nothing; of the current one, it succeeds', async () => {
    await ok('run', 'cas', '--image', 'registry.k8s.io/pause:3.10', '--restart', 'Never');
    const stale = JSON.parse(await ok('get', 'pod', 'cas', '-o', 'json'));
    await ok('label', 'pod', 'cas', 'moved=on');
    const rv = (await ok('get', 'pod', 'cas', '-o', 'jsonpath={.metadata.resourceVersion}')).trim();
    writeFileSync(join(dir, 'stale.json'), JSON.stringify({ ...stale, metadata: { ...stale.metadata, labels: { mine: 'yes' } } }));
    const refused = await kubectl('replace', '-f', join(dir, 'stale.json'));
    expect(refused.stderr).toMatch(/Operation cannot be fulfilled on pods "cas": the object has been modified/);
    expect((await ok('get', 'pod', 'cas', '-o', 'jsonpath={.metadata.resourceVersion}')).trim()).toBe(rv);
    const current = JSON.parse(await ok('get', 'pod', 'cas', '-o', 'json'));
    writeFileSync(join(dir, 'current.json'), JSON.stringify({ ...current, metadata: { ...current.metadata, labels: { mine: 'yes' } } }));
    await ok('replace', '-f', join(dir, 'current.json'));
    expect(await ok('get', 'pod', 'cas', '-o', 'jsonpath={.metadata.labels}')).toBe('{"mine":"yes"}');
  });

  test('namespaces: kubernetes.io/metadata.name is set; deleting one takes its objects; a pod in a missing namespace is 404', async () => {
    await ok('create', 'namespace', 'x');
    expect((await ok('get', 'ns', 'x', '-o', 'jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}'))).toBe('x');
    await ok('run', 'a', '-n', 'x', '--image', 'registry.k8s.io/pause:3.10', '--restart', 'Never');
    expect((await ok('get', 'pods', '-n', 'x', '-o', 'name')).trim()).toBe('pod/a');
    expect((await kubectl('run', 'a', '-n', 'nowhere', '--image', 'registry.k8s.io/pause:3.10', '--restart', 'Never')).stderr).toMatch(/namespaces "nowhere" not found/);
    await ok('delete', 'namespace', 'x');
    expect(api.store.list(api.resources.find('', 'v1', 'pods'), 'x')).toEqual([]);
  });

  test('watches: initial ADDED, changes in order, resume from a resourceVersion, 410 once compacted (as an ERROR event and as a status), bookmarks, selectors', async () => {
    const pods = '/api/v1/namespaces/default/pods';
    const w = watch(api.url, `${pods}?watch=1&labelSelector=w%3Dyes&allowWatchBookmarks=true`);
    await ok('run', 'w1', '--image', 'registry.k8s.io/pause:3.10', '--restart', 'Never', '--labels', 'w=yes');
    await ok('run', 'w2', '--image', 'registry.k8s.io/pause:3.10', '--restart', 'Never', '--labels', 'w=no');
    (await ok('label', 'pod', 'w2', 'w=yes', '--overwrite')); // enters the selection: ADDED
    (await ok('label', 'pod', 'w1', 'w=no', '--overwrite')); // leaves it: DELETED
    await until(() => w.events.filter((e) => e.type !== 'BOOKMARK').length >= 3);
    await until(() => w.events.some((e) => e.type === 'BOOKMARK'));
    expect(w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED w1', 'ADDED w2', 'DELETED w1']);
    const bookmark = w.events.find((e) => e.type === 'BOOKMARK')!;
    expect(Number(bookmark.object.metadata.resourceVersion)).toBeGreaterThan(0);
    w.close();

    // Resume from the resourceVersion of w1's creation: everything after it, nothing before.
    const rv = JSON.parse((await ok('get', 'pod', 'w2', '-o', 'json'))).metadata.resourceVersion as string;
    await ok('annotate', 'pod', 'w2', 'x=1');
    const r = watch(api.url, `${pods}?watch=true&resourceVersion=${rv}`);
    await until(() => r.events.length >= 1);
    expect(r.events.map((e) => `${e.type} ${e.object.metadata.name}`)).toContain('MODIFIED w2');
    expect(r.events.every((e) => Number(e.object.metadata.resourceVersion) > Number(rv))).toBe(true);
    r.close();

    // Compacted: 410 Gone, as the real server sends it (an ERROR event in a 200 stream) and as a status.
    api.store.compact();
    await ok('annotate', 'pod', 'w2', 'x=2', '--overwrite');
    const gone = watch(api.url, `${pods}?watch=true&resourceVersion=${rv}`);
    await until(() => gone.ended);
    expect(gone.status).toBe(200);
    expect(gone.events).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) }]);
    api.goneAs = 'status';
    const gone2 = watch(api.url, `${pods}?watch=true&resourceVersion=${rv}`);
    await until(() => gone2.ended);
    expect(gone2.status).toBe(410);
    api.goneAs = 'event';
  });

  test('faults on demand: closed and silenced watches, injected failures, RBAC refusals', async () => {
    const pods = '/api/v1/namespaces/default/pods';
    api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'f1', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } });
    const a = watch(api.url, `${pods}?watch=1`);
    await until(() => a.events.length > 0);
    api.closeWatches();
    await until(() => a.ended);
    const s = watch(api.url, `${pods}?watch=1&allowWatchBookmarks=true`);
    await until(() => s.events.length > 0);
    api.silenceWatches();
    const seen = s.events.length;
    await ok('annotate', 'pod', 'f1', 'silent=1');
    await new Promise((res) => setTimeout(res, 600)); // three bookmark periods
    expect(s.events.length).toBe(seen);
    expect(s.ended).toBe(false);
    s.close();

    api.failNext(500, { method: 'GET', pathIncludes: '/pods/f1' });
    expect((await kubectl('get', 'pod', 'f1')).stderr).toMatch(/injected failure \(500\)/);
    expect(await kubectl('get', 'pod', 'f1')).toMatchObject({ code: 0 });
    api.deny('patch', 'pods/status');
    expect((await kubectl('patch', 'pod', 'f1', '--subresource', 'status', '--type', 'merge', '-p', '{"status":{"phase":"Running"}}')).stderr).toMatch(/forbidden: User "system:serviceaccount:kube-system:plexus" cannot patch resource "pods\/status"/);
    api.allow('patch', 'pods/status');
  });

  test('over TLS with bearer tokens (kubectl sends tokens over TLS only): an unknown token is 401, a rotated one is taken', async () => {
    const secure = new KubeApiServer({ tls: true });
    await secure.start();
    try {
      const cfg = join(dir, 'tls.kubeconfig');
      secure.acceptTokens(['t1']);
      secure.writeKubeconfig(cfg, 't0');
      const get = () => runAsync('kubectl', ['--kubeconfig', cfg, 'get', 'namespaces', '-o', 'name'], { timeoutMs: 30_000 });
      expect((await get()).stderr).toMatch(/Unauthorized|provide credentials/);
      secure.writeKubeconfig(cfg, 't1');
      expect(await get()).toMatchObject({ code: 0, stdout: 'namespace/default\nnamespace/kube-system\n' });
      secure.acceptTokens(['t2']); // rotated on the server's side: the old token stops working
      expect((await get()).code).not.toBe(0);
    } finally {
      await secure.stop();
    }
  });
});

interface WatchEvent {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata: { name: string; resourceVersion: string } };
}

/** A raw watch stream: its events as they arrive, its status, whether it ended. */
function watch(base: string, path: string): { events: WatchEvent[]; status: number; ended: boolean; close(): void } {
  const out = { events: [] as WatchEvent[], status: 0, ended: false, close: () => req.destroy() };
  const url = new URL(path, base);
  const req = request(url, (res) => {
    out.status = res.statusCode ?? 0;
    let buf = '';
    res.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const parsed = JSON.parse(line);
        out.events.push(parsed.type ? parsed : { type: 'STATUS', object: parsed });
      }
    });
    res.on('end', () => (out.ended = true));
    res.on('close', () => (out.ended = true));
  });
  req.on('error', () => (out.ended = true));
  req.end();
  return out;
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
