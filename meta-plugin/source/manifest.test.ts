import { parseManifests } from './manifest';

const NAD_CONFIG = '{"cniVersion":"1.0.0","name":"net-a","type":"macvlan"}';
const NAD_YAML = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: net-a
  namespace: team
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/vf
spec:
  config: '${NAD_CONFIG}'
`;
const POD_YAML = `apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: team
  uid: 8d4c1a52-0b6e-4c2f-9f1e-3a7b5c9d0e11
  annotations:
    k8s.v1.cni.cncf.io/networks: net-a
`;
const POOL_YAML = `apiVersion: plexus.io/v1alpha1
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.1.0.0/16
`;
const NAD = { namespace: 'team', name: 'net-a', config: NAD_CONFIG, annotations: { 'k8s.v1.cni.cncf.io/resourceName': 'intel.com/vf' } };
const POD = { namespace: 'team', name: 'web-0', uid: '8d4c1a52-0b6e-4c2f-9f1e-3a7b5c9d0e11', annotations: { 'k8s.v1.cni.cncf.io/networks': 'net-a' } };

describe('formats', () => {
  test('multi-document YAML: NADs, pods and other kinds, empty documents ignored', () => {
    const out = parseManifests('all.yaml', `---\n${NAD_YAML}---\n# only a comment\n---\n${POD_YAML}---\n${POOL_YAML}...\n`);
    expect(out).toEqual({ nads: [NAD], pods: [POD], others: [expect.objectContaining({ kind: 'IPPool', spec: { cidr: '10.1.0.0/16' } })], problems: [] });
  });

  test('JSON', () => {
    const nad = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'net-a', namespace: 'team', annotations: NAD.annotations }, spec: { config: NAD_CONFIG } };
    expect(parseManifests('nad.json', JSON.stringify(nad, null, 2))).toMatchObject({ nads: [NAD], problems: [] });
  });

  test('kind: List, items of mixed kinds', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [{ kind: 'Pod', metadata: { name: 'a' } }, { kind: 'NetworkAttachmentDefinition', metadata: { name: 'b', namespace: 'x' } }] };
    expect(parseManifests('list.json', JSON.stringify(list))).toEqual({
      nads: [{ namespace: 'x', name: 'b', annotations: {} }],
      pods: [{ namespace: 'default', name: 'a', annotations: {} }],
      others: [],
      problems: [],
    });
  });

  test('a pod keeps its ownerReferences (kind and name; malformed entries dropped)', () => {
    const pod = { kind: 'Pod', metadata: { name: 'db-0', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', controller: true }, { kind: 7 }, 'x'] } };
    expect(parseManifests('pod.json', JSON.stringify(pod)).pods).toEqual([
      { namespace: 'default', name: 'db-0', annotations: {}, ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] },
    ]);
  });

  test('an empty file has nothing and no problems', () => {
    expect(parseManifests('empty.yaml', '')).toEqual({ nads: [], pods: [], others: [], problems: [] });
  });
});

describe('objects', () => {
  test.each<[string, string, object]>([
    ['a NAD without spec is resolved on disk later (S5): no config', 'kind: NetworkAttachmentDefinition\nmetadata: {name: on-disk}', { namespace: 'default', name: 'on-disk', annotations: {} }],
    ['an empty spec.config is no config', "kind: NetworkAttachmentDefinition\nmetadata: {name: n}\nspec: {config: ''}", { namespace: 'default', name: 'n', annotations: {} }],
    ['null annotations are none', 'kind: NetworkAttachmentDefinition\nmetadata: {name: n, annotations: null}', { namespace: 'default', name: 'n', annotations: {} }],
    ['S4: a 63-character name', `kind: NetworkAttachmentDefinition\nmetadata: {name: ${'a'.repeat(63)}}`, { namespace: 'default', name: 'a'.repeat(63), annotations: {} }],
  ])('%s', (_title, text, nad) => {
    expect(parseManifests('f.yaml', text)).toEqual({ nads: [nad], pods: [], others: [], problems: [] });
  });

  test('a pod name may be a dotted DNS-1123 subdomain', () => {
    expect(parseManifests('p.yaml', 'kind: Pod\nmetadata: {name: web.v2-0, namespace: team}').pods).toEqual([{ namespace: 'team', name: 'web.v2-0', annotations: {} }]);
  });
});

describe('malformed documents are reported with the reason and skipped; valid neighbours load', () => {
  test.each<[string, string, string]>([
    ['not an object', '- just\n- a list', 'not an object'],
    ['a scalar', 'hello', 'not an object'],
    ['no kind', 'metadata: {name: x}', 'missing "kind"'],
    ['no metadata.name', 'kind: Pod\nmetadata: {namespace: team}', 'Pod without metadata.name'],
    ['a numeric name', 'kind: Pod\nmetadata: {name: 42}', 'Pod without metadata.name'],
    ['an upper-case namespace', 'kind: Pod\nmetadata: {name: p, namespace: Team}', 'Pod p: invalid metadata.namespace'],
    ['a namespace with "/"', 'kind: Pod\nmetadata: {name: p, namespace: a/b}', 'Pod p: invalid metadata.namespace'],
    ['a numeric namespace', 'kind: Pod\nmetadata: {name: p, namespace: 7}', 'Pod p: invalid metadata.namespace'],
    ['an annotation that is not a string', 'kind: Pod\nmetadata: {name: p, annotations: {replicas: 3}}', 'Pod default/p: metadata.annotations must map strings to strings'],
    ['annotations as a list', 'kind: Pod\nmetadata: {name: p, annotations: [a]}', 'Pod default/p: metadata.annotations must map strings to strings'],
    ['S4: a NAD name with "_" and capitals', 'kind: NetworkAttachmentDefinition\nmetadata: {name: Bad_Name}', 'NetworkAttachmentDefinition default/Bad_Name: name is not a DNS-1123 label (S4)'],
    ['S4: a dotted NAD name', 'kind: NetworkAttachmentDefinition\nmetadata: {name: a.b}', 'NetworkAttachmentDefinition default/a.b: name is not a DNS-1123 label (S4)'],
    ['S4: a NAD name over 63 characters', `kind: NetworkAttachmentDefinition\nmetadata: {name: ${'a'.repeat(64)}}`, `NetworkAttachmentDefinition default/${'a'.repeat(64)}: name is not a DNS-1123 label (S4)`],
    ['a pod name ending in "-"', 'kind: Pod\nmetadata: {name: web-}', 'Pod default/web-: name is not a DNS-1123 subdomain'],
    ['a NAD spec that is a string', 'kind: NetworkAttachmentDefinition\nmetadata: {name: n}\nspec: oops', 'NetworkAttachmentDefinition default/n: spec must be an object'],
    ['S2: spec.config as an object', 'kind: NetworkAttachmentDefinition\nmetadata: {name: n}\nspec: {config: {type: macvlan}}', 'NetworkAttachmentDefinition default/n: spec.config must be a string (S2)'],
    ['a YAML syntax error', 'kind: [unclosed\nmetadata: {name: x}', 'not valid YAML/JSON'],
    ['a tab-indented YAML document', 'kind: Pod\nmetadata:\n\tname: p', 'not valid YAML/JSON'],
  ])('%s', (_title, bad, reason) => {
    const out = parseManifests('mixed.yaml', `${NAD_YAML}---\n${bad}\n---\n${POD_YAML}`);
    expect(out.problems).toEqual([expect.stringContaining(`mixed.yaml document 2: ${reason}`)]);
    expect(out.nads).toEqual([NAD]);
    expect(out.pods).toEqual([POD]);
  });

  test('a bad item of a List is reported with its document; the other items load', () => {
    const text = `${POD_YAML}---\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: ok}\n- kind: Pod\n  metadata: {name: Bad!}\n`;
    const out = parseManifests('l.yaml', text);
    expect(out.pods.map((p) => p.name)).toEqual(['web-0', 'ok']);
    expect(out.problems).toEqual(['l.yaml document 2: Pod default/Bad!: name is not a DNS-1123 subdomain']);
  });

  test('every problem of a file is reported, numbered by document', () => {
    const out = parseManifests('m.yaml', `kind: [\n---\n${NAD_YAML}---\nmetadata: {}\n---\n{broken: json\n`);
    expect(out.nads).toEqual([NAD]);
    expect(out.problems).toEqual([
      expect.stringMatching(/^m\.yaml document 1: not valid YAML\/JSON: /),
      'm.yaml document 3: missing "kind"',
      expect.stringMatching(/^m\.yaml document 4: not valid YAML\/JSON: /),
    ]);
  });

  test('a broken JSON file is one problem naming the file', () => {
    const out = parseManifests('nad.json', '{"kind": "Pod", "metadata": {"name": "p"}');
    expect(out).toMatchObject({ pods: [], problems: [expect.stringMatching(/^nad\.json.*: not valid YAML\/JSON: /)] });
  });
});
