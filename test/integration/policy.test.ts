/**
 * Policies through the daemon on the file source: NetworkPolicy, MultiNetworkPolicy and Namespace manifests
 * are validated and defaulted as the API server would (an invalid one is refused with a warning naming its
 * field, and the rest still apply), and `plexusctl policy NAMESPACE/POD` says which policies select the pod and
 * what they allow, following manifest changes without a restart.
 */
import { expectEventually } from '../helpers/eventually';
import { PLEXUSCTL_BIN, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(60_000);

describe('policies on the file source', () => {
  let c: TestCluster;
  const policy = (ref: string) => run(PLEXUSCTL_BIN, ['--socket', c.socket, 'policy', ref], { allowFail: true });

  beforeAll(async () => {
    c = await TestCluster.start();
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('plexusctl policy shows the policies selecting a pod, per network and direction; a refused policy is named in a warning', async () => {
    await c.writeManifests('policies.yaml', [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'monitoring', labels: { team: 'ops' } } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 8080 }] }] } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'web-in', namespace: 'default' },
        spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }, { podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['lb', 'proxy'] }] } }], ports: [{ port: 'http' }, { protocol: 'UDP', port: 5000, endPort: 5010 }] }] } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny-out', namespace: 'default' }, spec: { podSelector: {}, policyTypes: ['Egress'] } },
      { apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy', metadata: { name: 'storage-in', namespace: 'default', annotations: { 'k8s.v1.cni.cncf.io/policy-for': 'storage' } },
        spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.60.0.0/16', except: ['10.60.9.0/24'] } }] }] } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'broken', namespace: 'default' },
        spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] } },
    ]);
    const out = policy('default/web');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({
      pod: 'default/web', labels: { app: 'web' },
      networks: [
        {
          network: 'cluster',
          ingress: { isolated: true, policies: [{ policy: 'default/web-in', kind: 'NetworkPolicy', rules: ['allow from all pods in namespaces {team=ops} or pods {role in (lb,proxy)} in namespace default on TCP port named http, UDP 5000-5010'] }] },
          egress: { isolated: true, policies: [{ policy: 'default/deny-out', kind: 'NetworkPolicy', rules: [] }] },
        },
        {
          network: 'default/storage',
          ingress: { isolated: true, policies: [{ policy: 'default/storage-in', kind: 'MultiNetworkPolicy', rules: ['allow from 10.60.0.0/16 except 10.60.9.0/24 on any port'] }] },
          egress: { isolated: false, policies: [] },
        },
      ],
    });
    await expectEventually(() => expect(c.log()).toMatch(/NetworkPolicy default\/broken refused: spec.ingress\[0\].from\[0\].ipBlock.except\[0\]: 10.1.0.0\/24 must be a strict subset of 10.0.0.0\/16/));
  });

  test('a manifest change takes effect without a restart; an unknown pod is an error naming it', async () => {
    await c.writeManifests('policies.yaml', [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    ]);
    await expectEventually(() => expect(JSON.parse(policy('default/web').stdout).networks).toEqual([
      { network: 'cluster', ingress: { isolated: false, policies: [] }, egress: { isolated: false, policies: [] } },
    ]));
    const missing = policy('default/nobody');
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({ code: 1, stderr: 'plexusctl: no pod default/nobody in the source\n' });
    expect(policy('nonsense').code).toBe(2);
  });
});
