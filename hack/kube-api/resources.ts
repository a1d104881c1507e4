/**
 * The kinds the test API server serves, and the discovery documents kubectl and client libraries read
 * (/api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION). Built-in kinds are fixed; a
 * CustomResourceDefinition adds its kind when created and removes it when deleted, as the real server does.
 */
import { ApiError, type KubeObject } from './types';

export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  /** A `/status` subresource: the main resource ignores status, `/status` changes status only. */
  status: boolean;
  /** Built-in kinds take strategic merge patches; custom resources answer 415. */
  builtin: boolean;
  shortNames?: string[];
  /** Field selectors the kind supports beyond metadata.name and metadata.namespace. */
  fields?: string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const BUILTIN: ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, status: true, builtin: true, shortNames: ['ns'], fields: ['status.phase'] },
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, status: true, builtin: true, shortNames: ['po'], fields: ['spec.nodeName', 'status.phase', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.podIP'] },
  { group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, status: false, builtin: true, shortNames: ['ev'], fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'reason', 'type', 'source'] },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, status: true, builtin: true, shortNames: ['no'], fields: ['spec.unschedulable'] },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, status: false, builtin: true, shortNames: ['cm'] },
  { group: '', version: 'v1', plural: 'serviceaccounts', singular: 'serviceaccount', kind: 'ServiceAccount', namespaced: true, status: false, builtin: true, shortNames: ['sa'] },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', singular: 'clusterrole', kind: 'ClusterRole', namespaced: false, status: false, builtin: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', singular: 'clusterrolebinding', kind: 'ClusterRoleBinding', namespaced: false, status: false, builtin: true },
  { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', singular: 'networkpolicy', kind: 'NetworkPolicy', namespaced: true, status: false, builtin: true, shortNames: ['netpol'] },
  { group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, status: true, builtin: true, shortNames: ['ds'] },
  { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', singular: 'customresourcedefinition', kind: 'CustomResourceDefinition', namespaced: false, status: true, builtin: true, shortNames: ['crd', 'crds'] },
];

export const apiVersionOf = (r: ResourceType): string => (r.group ? `${r.group}/${r.version}` : r.version);

export class Resources {
  private readonly types: ResourceType[] = [...BUILTIN];

  find(group: string, version: string, plural: string): ResourceType {
    const r = this.types.find((t) => t.group === group && t.version === version && t.plural === plural);
    if (!r) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${group ? `${group}/` : ''}${version} ${plural})`);
    return r;
  }

  all(): readonly ResourceType[] {
    return this.types;
  }

  /** The kinds a CRD defines (one per served version). */
  static fromCrd(crd: KubeObject): ResourceType[] {
    const spec = crd['spec'] as { group: string; scope: string; names: { plural: string; singular?: string; kind: string; shortNames?: string[] }; versions: Array<{ name: string; served: boolean; subresources?: { status?: unknown } }> };
    return spec.versions.filter((v) => v.served).map((v) => ({
      group: spec.group, version: v.name, plural: spec.names.plural, singular: spec.names.singular ?? spec.names.kind.toLowerCase(), kind: spec.names.kind,
      namespaced: spec.scope === 'Namespaced', status: v.subresources?.status !== undefined, builtin: false, ...(spec.names.shortNames ? { shortNames: spec.names.shortNames } : {}),
    }));
  }

  addCrd(crd: KubeObject): void {
    this.removeCrd(crd);
    this.types.push(...Resources.fromCrd(crd));
  }

  removeCrd(crd: KubeObject): void {
    const spec = crd['spec'] as { group: string; names: { plural: string } };
    for (let i = this.types.length - 1; i >= 0; i--) {
      const t = this.types[i]!;
      if (!t.builtin && t.group === spec.group && t.plural === spec.names.plural) this.types.splice(i, 1);
    }
  }

  /** GET /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION; undefined when the path is none of them. */
  discovery(path: string): unknown {
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    if (path === '/api/v1') return this.resourceList('', 'v1');
    if (path === '/apis') return { kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups() };
    const m = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (!m) return undefined;
    const group = this.groups().find((g) => g.name === m[1]);
    if (!group) throw new ApiError(404, 'NotFound', `the server could not find the requested resource`);
    if (!m[2]) return { kind: 'APIGroup', apiVersion: 'v1', ...group };
    if (!group.versions.some((v) => v.version === m[2])) throw new ApiError(404, 'NotFound', `the server could not find the requested resource`);
    return this.resourceList(m[1]!, m[2]);
  }

  /**
   * OpenAPI v3, as much as kubectl reads: the index of group-versions, and per group-version the paths of its
   * kinds, each operation naming its kind (`x-kubernetes-group-version-kind`) and declaring the
   * `fieldValidation` parameter, from which kubectl concludes the server validates fields itself (so it needs
   * no schemas). The documents carry no schemas.
   */
  openapi(path: string): unknown {
    const gvs = new Map<string, ResourceType[]>();
    for (const t of this.types) {
      const key = t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`;
      gvs.set(key, [...(gvs.get(key) ?? []), t]);
    }
    if (path === '/openapi/v3') return { paths: Object.fromEntries([...gvs.keys()].map((k) => [k, { serverRelativeURL: `/openapi/v3/${k}?hash=${k.length}` }])) };
    const types = gvs.get(path.replace(/^\/openapi\/v3\//, ''));
    if (!types) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const param = { name: 'fieldValidation', in: 'query', schema: { type: 'string' }, description: 'Ignore, Warn or Strict' };
    const paths: Record<string, unknown> = {};
    for (const t of types) {
      const op = { parameters: [param], responses: { '200': { description: 'OK' } }, 'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind } };
      const base = `/${t.group ? `apis/${t.group}` : 'api'}/${t.version}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}`;
      paths[base] = { get: op, post: op };
      paths[`${base}/{name}`] = { get: op, put: op, patch: op, delete: op };
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.31.0' }, paths, components: { schemas: {} } };
  }

  private groups(): Array<{ name: string; versions: Array<{ groupVersion: string; version: string }>; preferredVersion: { groupVersion: string; version: string } }> {
    const byGroup = new Map<string, string[]>();
    for (const t of this.types) {
      if (!t.group) continue;
      const vs = byGroup.get(t.group) ?? [];
      if (!vs.includes(t.version)) vs.push(t.version);
      byGroup.set(t.group, vs);
    }
    return [...byGroup].map(([name, vs]) => {
      const versions = vs.map((version) => ({ groupVersion: `${name}/${version}`, version }));
      return { name, versions, preferredVersion: versions[0]! };
    });
  }

  private resourceList(group: string, version: string): unknown {
    const resources = this.types.filter((t) => t.group === group && t.version === version).flatMap((t) => [
      { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: VERBS, ...(t.shortNames ? { shortNames: t.shortNames } : {}) },
      ...(t.status ? [{ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] }] : []),
    ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }
}
