import { ealArgs, parseDpdkOptions, uplinkPortName } from './config';

describe('the dpdk section', () => {
  test('defaults: no hugepages, lcore 0 floating over two CPUs, no uplinks', () => {
    const o = parseDpdkOptions(undefined);
    expect(o).toMatchObject({ socketPath: '/run/plexus/dataplane.sock', socketDir: '/run/plexus/dpdk', hugepages: false, lcores: '0@(0-1),1@1', uplinks: {} });
    expect(ealArgs(o)).toEqual(expect.arrayContaining(['--no-huge', '--no-pci', '--lcores', '0@(0-1),1@1']));
    expect(ealArgs({ ...o, hugepages: true })).toEqual(expect.arrayContaining(['--in-memory', '-m', '256']));
  });

  test('uplinks per network: af_packet unless said; the engine names their ports after the interface', () => {
    const o = parseDpdkOptions({ uplinks: { 'dp-net': { iface: 'ens1f0v3' }, 'ns1/fast': { iface: 'eth2', driver: 'af_xdp' } } });
    expect(o.uplinks).toEqual({ 'dp-net': { iface: 'ens1f0v3', driver: 'af_packet' }, 'ns1/fast': { iface: 'eth2', driver: 'af_xdp' } });
    expect(uplinkPortName('ens1f0v3')).toBe('uplink-ens1f0v3');
  });

  test.each([
    [{ uplinks: { n: { iface: 'eth1', driver: 'tap' } } }, /dpdk: \/uplinks\/n\/driver must be equal to one of the allowed values/],
    [{ uplinks: { n: { iface: 'eth1,iface=x' } } }, /dpdk: \/uplinks\/n\/iface must match/],
    [{ uplinks: { n: { iface: 'an-interface-name-too-long' } } }, /\/uplinks\/n\/iface must match/],
    [{ uplinks: { n: {} } }, /\/uplinks\/n must have required property 'iface'/],
    [{ uplinks: { 'bad net': { iface: 'eth1' } } }, /dpdk: \/uplinks key "bad net" must match pattern/],
    [{ uplinks: { a: { iface: 'eth1' }, b: { iface: 'eth1' } } }, /dpdk.uplinks: eth1 is the uplink of both "a" and "b"/],
    [{ uplink: {} }, /must NOT have additional properties "uplink"/],
  ])('%j is refused naming the field', (raw, message) => {
    expect(() => parseDpdkOptions(raw)).toThrow(message);
  });
});
