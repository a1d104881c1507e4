/**
 * plexus-sriov's config: every sriov-cni key with sriov-cni's rules (`../shared/specs/sriov-and-devices.md`
 * 1.1), what Plexus adds (unknown keys named, misspellings pointed at), and the node's `sriov` section.
 */
import { parseSriovNetConf, parseSriovOptions } from './config';

const base = { cniVersion: '1.0.0', name: 'sriov-net', type: 'plexus-sriov', deviceID: '0000:AF:06.0' };
const parse = (extra: Record<string, unknown>, args = '') => parseSriovNetConf({ ...base, ...extra }, args);

describe('the network config', () => {
  test('only what the config names is applied; the PCI address is lower-cased', () => {
    expect(parse({})).toEqual({ network: 'sriov-net', pci: '0000:af:06.0' });
  });

  test.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['vlan alone: QoS 0, 802.1Q', { vlan: 100 }, { vlan: { id: 100, qos: 0, proto: '802.1Q' } }],
    ['vlan 0 resets (untagged)', { vlan: 0 }, { vlan: { id: 0, qos: 0, proto: '802.1Q' } }],
    ['vlanProto is case-insensitive', { vlan: 5, vlanQoS: 7, vlanProto: '802.1AD' }, { vlan: { id: 5, qos: 7, proto: '802.1ad' } }],
    ['one rate set: the other is sent as 0, as sriov-cni does', { max_tx_rate: 100 }, { rate: { min: 0, max: 100 } }],
    ['min above an unlimited max is fine', { min_tx_rate: 100, max_tx_rate: 0 }, { rate: { min: 100, max: 0 } }],
    ['on/off settings', { spoofchk: 'off', trust: 'on', link_state: 'disable' }, { spoofchk: false, trust: true, linkState: 'disable' }],
    ['pciBusID when deviceID is absent', { deviceID: undefined, pciBusID: '0000:03:02.1' }, { pci: '0000:03:02.1' }],
    ['ipam without a type is the built-in service', { ipam: { pool: 'p' } }, { ipam: { pool: 'p', type: 'plexus-ipam' } }],
    ['an empty ipam is no IPAM (L2 only)', { ipam: {} }, {}],
    ['the CNI device-info file from runtimeConfig', { runtimeConfig: { CNIDeviceInfoFile: '/run/d/x.json' } }, { deviceInfoFile: '/run/d/x.json' }],
    ['the shim\'s keys are accepted', { socketPath: '/run/p.sock', stateDir: '/var/lib/p', readinessTimeoutSeconds: 5, logLevel: 'debug', logFile: '/tmp/x' }, {}],
  ])('%s', (_t, extra, expected) => {
    expect(parse(extra)).toMatchObject(expected);
  });

  test('MAC: runtimeConfig.mac, else CNI_ARGS MAC, else mac; lower-cased, dashes as net.ParseMAC takes them', () => {
    expect(parse({ mac: '02:AA:00:00:00:01' }).mac).toBe('02:aa:00:00:00:01');
    expect(parse({ mac: '02-AA-00-00-00-01' }).mac).toBe('02:aa:00:00:00:01');
    expect(parse({ type: 'sriov' }).pci).toBe('0000:af:06.0'); // sriov-cni's type, when plexusd serves it
    expect(parse({ mac: '02:AA:00:00:00:01' }, 'IgnoreUnknown=1;MAC=02:BB:00:00:00:02').mac).toBe('02:bb:00:00:00:02');
    expect(parse({ mac: '02:AA:00:00:00:01', runtimeConfig: { mac: '02:CC:00:00:00:03' } }, 'MAC=02:BB:00:00:00:02').mac).toBe('02:cc:00:00:00:03');
  });

  test.each<[Record<string, unknown>, RegExp]>([
    [{ deviceID: undefined }, /deviceID is required/],
    [{ deviceID: 'af:06.0' }, /"af:06.0" is not a PCI address/],
    [{ vlan: -1 }, /\/vlan must be >= 0/],
    [{ vlan: 1, vlanQoS: 8 }, /\/vlanQoS must be <= 7/],
    [{ vlanProto: '802.1q' }, /vlanProto needs vlan/],
    [{ vlan: 0, vlanQoS: 1 }, /vlanQoS needs a non-zero vlan/],
    [{ vlan: 0, vlanProto: '802.1ad' }, /802\.1ad needs a non-zero vlan/],
    [{ trust: true }, /\/trust must be equal to one of the allowed values/],
    [{ min_tx_rate: 10.5 }, /\/min_tx_rate must be integer/],
    [{ min_tx_rate: 20, max_tx_rate: 10 }, /min_tx_rate 20 is above max_tx_rate 10/],
    [{ mtu: 20 }, /\/mtu must be >= 68/],
    [{ linkState: 'auto' }, /must NOT have additional properties "linkState".*sriov-cni's key is "link_state"/],
    [{ colour: 'blue' }, /must NOT have additional properties "colour"/],
    [{ ipam: { type: 7 } }, /ipam.type must be a string/],
  ])('%j is refused with code 7 naming the key', (extra, message) => {
    expect(() => parse(extra)).toThrow(expect.objectContaining({ kind: 'InvalidConfig', cniCode: 7, message: expect.stringMatching(message) }));
  });

  test('a bad CNI_ARGS MAC is named', () => {
    expect(() => parse({}, 'MAC=02:00')).toThrow(/CNI_ARGS MAC="02:00" is not a MAC address/);
  });
});

describe("the node's sriov section", () => {
  test('defaults', () => {
    expect(parseSriovOptions({})).toEqual({
      sysfsRoot: '/sys',
      emulatePf: false,
      serveSriovType: false,
      podResources: { socket: '/var/lib/kubelet/pod-resources/kubelet.sock', checkpoint: '/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint', timeoutMs: 5000, cacheMs: 1000 },
      macRetries: 20,
      macRetryDelayMs: 100,
    });
  });

  test('an emulated PF is refused on the real /sys', () => {
    expect(() => parseSriovOptions({ emulatePf: true })).toThrow(/never \/sys/);
    expect(() => parseSriovOptions({ emulatePf: true, sysfsRoot: '/sys/' })).toThrow(/never \/sys/);
    expect(parseSriovOptions({ emulatePf: true, sysfsRoot: '/tmp/fake' }).emulatePf).toBe(true);
  });

  test('unknown keys and bad values are named', () => {
    expect(() => parseSriovOptions({ sysfs: '/x' })).toThrow(/sriov: \/ must NOT have additional properties "sysfs"/);
    expect(() => parseSriovOptions({ podResources: { timeoutMs: 1 } })).toThrow(/\/podResources\/timeoutMs must be >= 100/);
  });
});
