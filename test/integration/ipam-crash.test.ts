/**
 * plexusd SIGKILLed in the middle of plexus-ipam allocations (issue 3): after a restart the state is
 * consistent, every retried ADD gets an address and the ones answered before the kill get the same one
 * back, no address is given twice, and after DEL nothing is held.
 */
import { join } from 'node:path';
import { eventually } from '../helpers/eventually';
import { TestCluster, containerId, runProcess, run, ROOT, PLEXUSCTL_BIN } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

test('SIGKILL of plexusd mid-allocation: retried ADDs converge, no duplicate, no leak', async () => {
  const c = await TestCluster.start({ daemon: { ipam: { pools: [{ name: 'crash-pool', cidrs: ['10.90.0.0/21'], blockSize: 26 }] } } });
  try {
    const netns = `/var/run/netns/${c.node}`;
    const config = JSON.stringify({ cniVersion: '1.0.0', name: 'crashnet', type: 'bridge', ipam: { type: 'plexus-ipam', pool: 'crash-pool', socketPath: c.socket, stateDir: c.stateDir, readinessTimeoutSeconds: 20 } });
    const call = (command: string, id: string) =>
      runProcess(join(ROOT, 'bin/plexus-ipam'), [], { PATH: process.env['PATH'] ?? '', CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni' }, config);
    const ids = Array.from({ length: 80 }, () => containerId());
    const answered = new Map<string, string>();
    // 1. Fire every ADD; kill the daemon while they are in flight.
    const first = ids.map((id) => call('ADD', id).then((o) => (o.code === 0 ? answered.set(id, o.json.ips[0].address) : undefined)));
    await eventually('15 ADDs answered before the kill', () => answered.size >= 15, 30_000, 2);
    const beforeKill = answered.size;
    await c.stopDaemon('SIGKILL');
    expect(beforeKill).toBeLessThan(ids.length); // the kill really came with requests in flight
    // Every caller in flight now falls back to the Node shim, which waits for readiness: give it time.
    await c.startDaemon(30_000);
    await Promise.all(first); // the shim waits for the restarted daemon (readinessTimeoutSeconds)
    // 2. Retry every ADD, as a runtime would.
    const retried = new Map<string, string>();
    for (const id of ids) {
      const o = await call('ADD', id);
      expect({ id, code: o.code, out: o.code === 0 ? '' : o.stdout }).toEqual({ id, code: 0, out: '' });
      retried.set(id, o.json.ips[0].address);
    }
    for (const [id, addr] of answered) expect(retried.get(id)).toBe(addr);
    expect(new Set(retried.values()).size).toBe(ids.length);
    const held = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pods']).stdout) as { addresses: { ip: string }[] }[];
    expect(held.flatMap((p) => p.addresses.map((a) => a.ip)).sort()).toEqual([...retried.values()].map((a) => a.split('/')[0]).sort());
    // 3. DEL everything: nothing is left.
    for (const id of ids) expect((await call('DEL', id)).code).toBe(0);
    expect(JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pods']).stdout)).toEqual([]);
  } finally {
    await c.destroy();
  }
});
