/** Flows as plexusctl observe filters and prints them, and the daemon's bounded ring of them. */
import { type Flow, FlowRing, flowMatches, formatFlow } from './flows';

describe('filters and lines', () => {
  const flow = (over: Partial<Flow> = {}): Flow => ({
    seq: 1, time: '2026-12-03T10:15:02.123Z', node: 'n1', network: 'cluster', verdict: 'DROPPED', drop_reason: 'POLICY_DENIED_INGRESS', protocol: 'TCP',
    source: { ip: '10.0.0.1', port: 40000, namespace: 'x', pod_name: 'a', labels: ['pod=a'] }, destination: { ip: '10.0.0.2', port: 80, namespace: 'y', pod_name: 'b' },
    traffic_direction: 'EGRESS', bytes: 60, ...over,
  });

  test('filters AND together; a pod without a namespace matches in any', () => {
    const f = flow();
    expect(flowMatches(f, { pod: 'b', verdict: 'DROPPED', toPort: 80, protocol: 'tcp' })).toBe(true);
    expect(flowMatches(f, { pod: 'y/b', fromPod: 'x/b' })).toBe(false);
    expect(flowMatches(f, { namespace: 'z' })).toBe(false);
    expect(flowMatches(f, { port: 40000, ip: '10.0.0.2' })).toBe(true);
  });

  test('a line per flow: time, network, both ends, protocol, verdict and why', () => {
    expect(formatFlow(flow())).toBe("10:15:02.123 [cluster] x/a:40000 -> y/b:80 TCP DROPPED (destination's ingress policy denies it)");
    expect(formatFlow(flow({ verdict: 'FORWARDED', drop_reason: undefined, destination: { ip: 'fd00::9', port: 53, identity: 'world' } })))
      .toBe('10:15:02.123 [cluster] x/a:40000 -> [fd00::9]:53 TCP FORWARDED');
    expect(formatFlow(flow({ cut: true, drop_reason: 'POLICY_DENIED_EGRESS', source: { ip: '192.0.2.1', identity: 'host' } })))
      .toBe("10:15:02.123 [cluster] host(192.0.2.1) -> y/b:80 TCP DROPPED (connection cut: source's egress policy denies it)");
  });
});

test('the flow ring keeps the newest flows, oldest first, once full', () => {
  const ring = new FlowRing(3);
  const seqs = () => ring.list().map((f) => f.seq);
  const base = { time: '', node: 'n', network: 'cluster', verdict: 'FORWARDED', protocol: 'TCP', source: { ip: '10.0.0.1' }, destination: { ip: '10.0.0.2' }, traffic_direction: 'EGRESS', bytes: 0 } as const;
  ring.push(base);
  ring.push(base);
  expect(seqs()).toEqual([1, 2]);
  for (let i = 0; i < 5; i++) ring.push(base);
  expect(seqs()).toEqual([5, 6, 7]);
  ring.push(base);
  expect(seqs()).toEqual([6, 7, 8]);
});

test('a flow pushed as a builder is built when first read, once, and at once for a follower', () => {
  const ring = new FlowRing(2);
  const base = { time: '', node: 'n', network: 'cluster', verdict: 'FORWARDED', protocol: 'TCP', source: { ip: '10.0.0.1' }, destination: { ip: '10.0.0.2' }, traffic_direction: 'EGRESS', bytes: 0 } as const;
  let builds = 0;
  const build = () => (builds++, base);
  ring.push(build);
  ring.push(build);
  ring.push(build); // takes the first one's slot, never built
  expect(builds).toBe(0);
  expect(ring.list().map((f) => f.seq)).toEqual([2, 3]);
  ring.list();
  expect(builds).toBe(2);
  const seen: number[] = [];
  const stop = ring.follow((f) => seen.push(f.seq));
  ring.push(build);
  expect([builds, seen]).toEqual([3, [4]]);
  stop();
});
