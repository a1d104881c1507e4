/**
 * The reference evaluator as reachability truth tables, in the shape of the upstream e2e suite
 * (test/e2e/network/netpol): namespaces x, y, z with pods a, b, c; ports 80 and 81 over TCP, UDP and SCTP with
 * named container ports serve-80-tcp ...; every pair probed after each policy set, the self cell ignored (NP6).
 * Each case names the upstream test it follows, or the rule of network-policy.md it pins.
 */
import { type Connection, type ContainerPort, type PolicyPod, type World, evaluate } from './evaluate';
import { type Policy, type Protocol, namespaceLabels, parsePolicy } from './parse';

const NAMESPACES = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const PORTS: ContainerPort[] = (['TCP', 'UDP', 'SCTP'] as const).flatMap((protocol) =>
  [80, 81].map((port) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol })));

const pods = new Map<string, { pod: PolicyPod; ip: string }>();
NAMESPACES.forEach((ns, i) => PODS.forEach((name, j) => pods.set(`${ns}/${name}`, { pod: { namespace: ns, name, labels: { pod: name }, ports: PORTS }, ip: `10.0.${i}.${j + 1}` })));
const ipOf = (id: string) => pods.get(id)!.ip;

function world(docs: object[]): World {
  return { policies: docs.map((d) => parsePolicy(d)), namespaces: new Map(NAMESPACES.map((n) => [n, namespaceLabels(n, { ns: n })])) };
}

const np = (namespace: string, name: string, spec: object): object => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec });

/** The table of a world for one protocol and port: "from -> to" of every pair that is denied. */
function denied(w: World, protocol: Protocol, port: number, network?: string): string[] {
  const out: string[] = [];
  for (const [from, s] of pods) {
    for (const [to, d] of pods) {
      if (from === to) continue; // NP6: the upstream suite ignores loopback
      const c: Connection = { src: { ip: s.ip, pod: s.pod }, dst: { ip: d.ip, pod: d.pod }, protocol, port, ...(network ? { network } : {}) };
      if (!evaluate(w, c).allowed) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

/** Every pair matching `from` and `to` (a pod id, `ns/*` or `*`), self excluded. */
function pairs(from: string, to: string): string[] {
  const m = (pat: string, id: string) => pat === '*' || pat === id || (pat.endsWith('/*') && id.startsWith(pat.slice(0, -1)));
  const out: string[] = [];
  for (const f of pods.keys()) for (const t of pods.keys()) if (f !== t && m(from, f) && m(to, t)) out.push(`${f} -> ${t}`);
  return out;
}
const minus = (a: string[], b: string[]) => a.filter((x) => !b.includes(x));

describe('reachability truth tables (upstream netpol cases)', () => {
  test('no policy: everything reaches everything on every protocol', () => {
    for (const p of ['TCP', 'UDP', 'SCTP'] as const) expect(denied(world([]), p, 80)).toEqual([]);
  });

  test('"should support a default-deny-ingress policy": nothing enters x; x reaches out', () => {
    const w = world([np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })]);
    expect(denied(w, 'TCP', 80)).toEqual(pairs('*', 'x/*'));
  });

  test('"should support a default-deny-all policy": x neither in nor out', () => {
    const w = world([np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
    expect(denied(w, 'UDP', 81).sort()).toEqual([...new Set([...pairs('*', 'x/*'), ...pairs('x/*', '*')])].sort());
  });

  test('"should enforce policy to allow traffic from pods within server namespace based on PodSelector"', () => {
    const w = world([np('x', 'allow-b', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    expect(denied(w, 'TCP', 80)).toEqual(minus(pairs('*', 'x/a'), ['x/b -> x/a']));
  });

  test('"should enforce policy based on NamespaceSelector with MatchExpressions" (NotIn x)', () => {
    const w = world([np('x', 'ns', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }] }] })]);
    expect(denied(w, 'TCP', 80)).toEqual(pairs('x/*', 'x/a'));
  });

  test('"...based on PodSelector or NamespaceSelector" (two peers: OR) vs "...PodSelector and NamespaceSelector" (one peer: AND) (F5)', () => {
    const or = world([np('x', 'or', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    expect(denied(or, 'TCP', 80).sort()).toEqual(minus(pairs('*', 'x/a'), [...pairs('y/*', 'x/a'), 'x/b -> x/a']).sort());
    const and = world([np('x', 'and', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    expect(denied(and, 'TCP', 80).sort()).toEqual(minus(pairs('*', 'x/a'), ['y/b -> x/a']).sort());
  });

  test('"should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label" (F11)', () => {
    const w = world([np('x', 'by-name', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] })]);
    expect(denied(w, 'TCP', 80).sort()).toEqual(minus(pairs('*', 'x/*'), pairs('y/*', 'x/*')).sort());
  });

  test('"should enforce policy based on Ports": 81 open, 80 closed, other protocols closed', () => {
    const w = world([np('x', 'port', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 81 }] }] })]);
    expect(denied(w, 'TCP', 81)).toEqual([]);
    expect(denied(w, 'TCP', 80)).toEqual(pairs('*', 'x/a'));
    expect(denied(w, 'UDP', 81)).toEqual(pairs('*', 'x/a')); // F3: protocol defaults to TCP
  });

  test('"should enforce ingress policy allowing any port traffic to a server on a specific protocol" and SCTP is never TCP (F14)', () => {
    const w = world([np('x', 'udp', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'UDP' }] }] })]);
    expect(denied(w, 'UDP', 80)).toEqual([]);
    expect(denied(w, 'UDP', 81)).toEqual([]);
    const tcp = world([np('x', 'tcp', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'TCP', port: 80 }] }] })]);
    expect(denied(tcp, 'SCTP', 80)).toEqual(pairs('*', 'x/a'));
  });

  test('"should allow ingress access on one named port"; a name with the other protocol opens nothing (F10)', () => {
    const w = world([np('x', 'named', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })]);
    expect(denied(w, 'TCP', 81)).toEqual([]);
    expect(denied(w, 'TCP', 80)).toEqual(pairs('*', 'x/*'));
    const mismatch = world([np('x', 'named', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 'serve-81-udp' }] }] })]);
    expect(denied(mismatch, 'TCP', 81)).toEqual(pairs('*', 'x/*'));
    expect(denied(mismatch, 'UDP', 81)).toEqual(pairs('*', 'x/*'));
  });

  test('"should allow egress access on one named port": resolved on each destination pod (F10)', () => {
    const w = world([np('x', 'egress-named', { podSelector: {}, egress: [{ ports: [{ port: 'serve-80-tcp' }] }], policyTypes: ['Egress'] })]);
    expect(denied(w, 'TCP', 80)).toEqual([]);
    expect(denied(w, 'TCP', 81)).toEqual(pairs('x/*', '*'));
  });

  test('endPort: "should enforce policy to allow ingress traffic from pods in all namespaces ... from port 80 to 81" (F8)', () => {
    const w = world([np('x', 'range', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 81 }] }] })]);
    expect(denied(w, 'TCP', 80)).toEqual([]);
    expect(denied(w, 'TCP', 81)).toEqual([]);
    const narrow = world([np('x', 'range', { podSelector: {}, ingress: [{ ports: [{ port: 81, endPort: 81 }] }] })]);
    expect(denied(narrow, 'TCP', 80)).toEqual(pairs('*', 'x/*'));
  });

  test('"should allow egress access to server in CIDR block" with pod addresses, and "should enforce except clause" (F12)', () => {
    const w = world([np('x', 'cidr', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${ipOf('y/b')}/32` } }] }] })]);
    expect(denied(w, 'TCP', 80)).toEqual(minus(pairs('x/a', '*'), ['x/a -> y/b']));
    const except = world([np('x', 'cidr', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: [`${ipOf('y/b')}/32`] } }] }] })]);
    expect(denied(except, 'TCP', 80)).toEqual(['x/a -> y/b']);
  });

  test('an address excluded by one ipBlock but allowed by another rule is allowed: union beats except (F13)', () => {
    const w = world([
      np('x', 'cidr', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: [`${ipOf('y/b')}/32`] } }] }] }),
      np('x', 'pods', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }] }] }),
    ]);
    expect(denied(w, 'TCP', 80)).toEqual([]);
  });

  test('"should enforce multiple, stacked policies with overlapping podSelectors": a union', () => {
    const w = world([
      np('x', 'p80', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80 }] }] }),
      np('x', 'p81', { podSelector: {}, ingress: [{ ports: [{ port: 81 }] }] }),
    ]);
    expect(denied(w, 'TCP', 80)).toEqual(minus(pairs('*', 'x/*'), pairs('*', 'x/a')));
    expect(denied(w, 'TCP', 81)).toEqual([]);
  });

  test('policyTypes defaulting: `egress: []` without policyTypes is an ingress deny, not an egress one (F2)', () => {
    const w = world([np('x', 'gotcha', { podSelector: {}, egress: [] })]);
    expect(denied(w, 'TCP', 80)).toEqual(pairs('*', 'x/*'));
  });

  test('ingress from the pod\'s own node is allowed on the cluster network (NP5), not on a secondary one', () => {
    const w = world([
      np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }),
      { apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy', metadata: { namespace: 'x', name: 'deny', annotations: { 'k8s.v1.cni.cncf.io/policy-for': 'blue' } }, spec: { podSelector: {}, policyTypes: ['Ingress'] } },
    ]);
    const fromNode = (network?: string) => evaluate(w, { src: { ip: '192.168.1.1', node: true }, dst: { ip: ipOf('x/a'), pod: pods.get('x/a')!.pod }, protocol: 'TCP', port: 80, ...(network ? { network } : {}) });
    expect(fromNode()).toMatchObject({ allowed: true, ingress: { node: true, isolatedBy: ['x/deny'] } });
    expect(fromNode('x/blue').allowed).toBe(false);
  });

  test('MultiNetworkPolicy governs only the networks of its policy-for; NetworkPolicy only the cluster network (§2.1)', () => {
    const w = world([{ apiVersion: 'k8s.cni.cncf.io/v1beta2', kind: 'MultiNetworkPolicy', metadata: { namespace: 'x', name: 'blue-only', annotations: { 'k8s.v1.cni.cncf.io/policy-for': ' blue , y/red' } }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 80 }] }] } }]);
    expect(denied(w, 'TCP', 81)).toEqual([]); // the cluster network
    expect(denied(w, 'TCP', 81, 'x/blue')).toEqual(pairs('*', 'x/*'));
    expect(denied(w, 'TCP', 81, 'y/red')).toEqual(pairs('*', 'x/*'));
    expect(denied(w, 'TCP', 80, 'x/blue')).toEqual([]);
    expect(denied(w, 'TCP', 81, 'y/blue')).toEqual([]); // policy-for without a namespace means the policy's
    const npOnly = world([np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })]);
    expect(denied(npOnly, 'TCP', 80, 'x/blue')).toEqual([]);
  });

  test('hostNetwork pods are node traffic: no pod selector matches them, no policy isolates them (NP9)', () => {
    const host: PolicyPod = { namespace: 'x', name: 'h', labels: { pod: 'b' }, ports: [], hostNetwork: true };
    const w = world([np('x', 'allow-b', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] })]);
    expect(evaluate(w, { src: { ip: '192.168.1.9', pod: host }, dst: { ip: ipOf('x/a'), pod: pods.get('x/a')!.pod }, protocol: 'TCP', port: 80 }).allowed).toBe(false);
    expect(evaluate(w, { src: { ip: ipOf('x/a'), pod: pods.get('x/a')!.pod }, dst: { ip: '192.168.1.9', pod: host }, protocol: 'TCP', port: 80 }).allowed).toBe(true);
  });

  test('a verdict names the policies that isolate and the ones that allowed', () => {
    const w = world([np('x', 'p80', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] }), np('x', 'p81', { podSelector: {}, ingress: [{ ports: [{ port: 81 }] }] })]);
    const v = evaluate(w, { src: { ip: ipOf('y/a'), pod: pods.get('y/a')!.pod }, dst: { ip: ipOf('x/a'), pod: pods.get('x/a')!.pod }, protocol: 'TCP', port: 81 });
    expect(v).toEqual({ allowed: true, egress: { allowed: true, isolatedBy: [], allowedBy: [] }, ingress: { allowed: true, isolatedBy: ['x/p80', 'x/p81'], allowedBy: ['x/p81'] } });
  });
});

describe('parsing as the API server would', () => {
  const parse = (spec: object, extra: object = {}): Policy => parsePolicy({ ...np('x', 'p', spec), ...extra });

  test('defaults: policyTypes from the rules (F2), protocol TCP (F3), an absent podSelector selects all (F1)', () => {
    expect(parse({ ingress: [{ ports: [{ port: 80 }] }] })).toEqual({ kind: 'NetworkPolicy', namespace: 'x', name: 'p', podSelector: { requirements: [] }, ingress: [{ ports: [{ protocol: 'TCP', port: 80 }] }] });
    expect(Object.keys(parse({ egress: [{}] })).sort()).toEqual(['egress', 'ingress', 'kind', 'name', 'namespace', 'podSelector']);
    expect(parse({ policyTypes: ['Egress'] }).ingress).toBeUndefined();
  });

  test.each([
    [{ ingress: [{ from: [{}] }] }, /spec.ingress\[0\].from\[0\]: must specify a peer/],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, /may not specify both ipBlock and another peer/],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] }, /except\[0\]: 10.0.0.0\/8 must be a strict subset/],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] }, /must be a strict subset/],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1/8' } }] }] }, /ipBlock.cidr/],
    [{ ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, /endPort: may only be set with a numeric port/],
    [{ ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, /endPort: must be greater than or equal to port/],
    [{ ingress: [{ ports: [{ protocol: 'ICMP' }] }] }, /protocol: must be TCP, UDP or SCTP/],
    [{ ingress: [{ ports: [{ port: '80' }] }] }, /a number must not be quoted/],
    [{ ingress: [{ ports: [{ port: 70000 }] }] }, /port: must be 1-65535/],
    [{ policyTypes: ['Ingress', 'Sideways'] }, /policyTypes\[1\]: must be Ingress or Egress/],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, /values: must be non-empty when operator is In/],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, /values: must be empty when operator is Exists/],
    [{ podSelector: { matchLabels: { 'bad key!': 'x' } } }, /is not a valid label key/],
    [{ ingres: [] }, /spec.ingres: unknown field/],
  ])('refused: %j', (spec, message) => {
    expect(() => parse(spec)).toThrow(message);
  });

  test('every problem of a policy is named at once, with the policy', () => {
    expect(() => parse({ ingress: [{ from: [{}] }, { ports: [{ protocol: 'ICMP' }] }] })).toThrow(/^NetworkPolicy x\/p refused: spec.ingress\[0\].from\[0\]: must specify a peer.*; spec.ingress\[1\].ports\[0\].protocol/);
  });

  test('MultiNetworkPolicy: policy-for is required; endPort is read in v1beta1 too (v1beta2 objects are served through it)', () => {
    const mnp = (apiVersion: string, spec: object, annotations?: object) => parsePolicy({ apiVersion, kind: 'MultiNetworkPolicy', metadata: { namespace: 'x', name: 'm', ...(annotations ? { annotations } : {}) }, spec });
    expect(() => mnp('k8s.cni.cncf.io/v1beta1', {})).toThrow(/policy-for: required/);
    expect(mnp('k8s.cni.cncf.io/v1beta1', { ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }, { 'k8s.v1.cni.cncf.io/policy-for': 'blue' }).ingress).toEqual([{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }]);
    expect(mnp('k8s.cni.cncf.io/v1beta2', { ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }, { 'k8s.v1.cni.cncf.io/policy-for': 'blue,y/red' }).networks).toEqual(['x/blue', 'y/red']);
  });

  test('a namespace always carries kubernetes.io/metadata.name (F11)', () => {
    expect(namespaceLabels('x', { team: 'a', 'kubernetes.io/metadata.name': 'spoofed' })).toEqual({ team: 'a', 'kubernetes.io/metadata.name': 'x' });
  });
});
