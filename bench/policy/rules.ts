/**
 * The same filtering in two renderings: as NetworkPolicy manifests (what Plexus compiles into its eBPF maps) and
 * as plain iptables rules (what the benchmark loads with iptables-restore into the FORWARD chain of a node
 * whose datapath forwards through the kernel). A rule set of N rules on a pod is N-1 filler rules that never
 * match the measured traffic (an address of 10.200.0.0/16 on one TCP port each) and, last, the rule that
 * allows the client: the worst place for a rule list read in order, and no place at all for an LPM lookup.
 *
 * iptables as every iptables-based policy implementation writes it: ESTABLISHED,RELATED accepted first (so only
 * a connection's first packet walks the rules), then a chain per selected pod, ending in DROP.
 */

/** The address of filler rule i: 10.200.0.0/16 holds 65536 of them. */
export const fillerAddress = (i: number): string => `10.200.${(i >> 8) & 255}.${i & 255}`;
const fillerPort = (i: number): number => 10000 + (i % 50000);

export interface RuleSet {
  /** The namespace and labels the policy selects. */
  readonly namespace: string;
  readonly selector: Record<string, string>;
  /** The rules on each selected pod, the last one allowing `allowFrom` on every port. */
  readonly rules: number;
  readonly allowFrom: string;
  /** Only allowFrom's connections to this port are allowed (none: every port). */
  readonly allowPort?: number;
}

/** One NetworkPolicy with `rules` ingress rules on the selected pods. */
export function networkPolicy(name: string, set: RuleSet): Record<string, unknown> {
  const ingress: Record<string, unknown>[] = [];
  for (let i = 0; i < set.rules - 1; i++) ingress.push({ from: [{ ipBlock: { cidr: `${fillerAddress(i)}/32` } }], ports: [{ protocol: 'TCP', port: fillerPort(i) }] });
  ingress.push({ from: [{ ipBlock: { cidr: `${set.allowFrom}/32` } }], ...(set.allowPort ? { ports: [{ protocol: 'TCP', port: set.allowPort }] } : {}) });
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: set.namespace, name },
    spec: { podSelector: { matchLabels: set.selector }, policyTypes: ['Ingress'], ingress },
  };
}

/** The chain names the benchmark owns in a node's filter table (and removes). */
export const IPT_TOP = 'PLXB-FWD';
const podChain = (i: number): string => `PLXB-P${i}`;

/**
 * iptables-restore input (`--noflush`) for `set` on the pods at `podIps`: the top chain jumped to from FORWARD
 * and a chain per pod. Applying it replaces whatever an earlier call loaded (the chains are flushed first).
 */
export function iptablesRestore(set: RuleSet, podIps: readonly string[]): string {
  const lines = ['*filter', `:${IPT_TOP} - [0:0]`, ...podIps.map((_, i) => `:${podChain(i)} - [0:0]`)];
  lines.push(`-A ${IPT_TOP} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`);
  podIps.forEach((ip, i) => lines.push(`-A ${IPT_TOP} -d ${ip}/32 -j ${podChain(i)}`));
  podIps.forEach((_, i) => {
    const chain = podChain(i);
    for (let r = 0; r < set.rules - 1; r++) lines.push(`-A ${chain} -s ${fillerAddress(r)}/32 -p tcp -m tcp --dport ${fillerPort(r)} -j ACCEPT`);
    lines.push(`-A ${chain} -s ${set.allowFrom}/32${set.allowPort ? ` -p tcp -m tcp --dport ${set.allowPort}` : ''} -j ACCEPT`);
    lines.push(`-A ${chain} -j DROP`);
  });
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * iptables-restore input (`--noflush`) taking the policy away: the top chain emptied (FORWARD's jump to it
 * stays) and the chains of `pods` pods deleted.
 */
export function iptablesRemove(pods: number): string {
  const chains = Array.from({ length: pods }, (_, i) => podChain(i));
  return ['*filter', `:${IPT_TOP} - [0:0]`, ...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n');
}
