import * as fs from 'node:fs';
import * as path from 'node:path';
import yaml from 'js-yaml';
import { formatCidr, formatIp, parseIp } from '../../core/address';
import {
  type BlockGeom, type PoolSpec, blockByKey, blockOfIp, blocksOf, ipOf, isUsable, nextUsable, parsePool, parsePoolList,
  poolCapacity, usableCount,
} from './pool';
import { POOL_SPEC_SCHEMA, parseIpamConfig, poolSpecFromManifest } from './pool-schema';

const usableIps = (g: BlockGeom): string[] => {
  const out: string[] = [];
  for (let o = nextUsable(g, 0); o >= 0; o = nextUsable(g, o + 1)) out.push(formatIp(ipOf(g, o)));
  return out;
};
const first = <T>(it: Iterable<T>): T => {
  for (const x of it) return x;
  throw new Error('empty');
};

describe('pool geometry', () => {
  test('default blocks: /26 and /122, network, broadcast and gateway never usable', () => {
    const p = parsePool({ name: 'p', cidrs: ['10.0.0.0/24', 'fd00::/120'], gateway: ['10.0.0.1', 'fd00::1'] });
    const v4 = [...blocksOf(p, 'v4')];
    expect(v4.map((b) => formatCidr(b.cidr))).toEqual(['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
    expect(usableIps(v4[0] as BlockGeom)[0]).toBe('10.0.0.2');
    expect(usableIps(v4[3] as BlockGeom).at(-1)).toBe('10.0.0.254');
    expect(poolCapacity(p, 'v4')).toBe(253n);
    const v6 = first(blocksOf(p, 'v6'));
    expect(formatCidr(v6.cidr)).toBe('fd00::/122');
    expect(usableIps(v6)[0]).toBe('fd00::2');
    expect(poolCapacity(p, 'v6')).toBe(254n); // no broadcast in IPv6
    expect(p.families).toEqual(['v4', 'v6']);
  });

  test.each([
    [26, '10.0.0.0/26', 'fd00::/122'],
    [{ v4: 28, v6: 124 }, '10.0.0.0/28', 'fd00::/124'],
    [{ v6: 126 }, '10.0.0.0/26', 'fd00::/126'],
  ] as [PoolSpec['blockSize'], string, string][])('blockSize %j', (blockSize, v4, v6) => {
    const p = parsePool({ name: 'p', cidrs: ['10.0.0.0/16', 'fd00::/64'], blockSize });
    expect(formatCidr(first(blocksOf(p, 'v4')).cidr)).toBe(v4);
    expect(formatCidr(first(blocksOf(p, 'v6')).cidr)).toBe(v6);
  });

  test('a block larger than the CIDR is the CIDR', () => {
    const p = parsePool({ name: 'p', cidrs: ['10.0.0.0/29'] });
    const blocks = [...blocksOf(p, 'v4')];
    expect(blocks.map((b) => formatCidr(b.cidr))).toEqual(['10.0.0.0/29']);
    expect(usableIps(blocks[0] as BlockGeom)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  test.each([
    ['10.0.0.7/32', ['10.0.0.7']],
    ['10.0.0.6/31', ['10.0.0.6', '10.0.0.7']],
    ['fd00::7/128', ['fd00::7']],
    ['fd00::6/127', ['fd00::6', 'fd00::7']],
  ])('%s: every address usable (RFC 3021)', (cidr, ips) => {
    const p = parsePool({ name: 'p', cidrs: [cidr] });
    expect([...blocksOf(p, p.families[0] as 'v4')].flatMap(usableIps)).toEqual(ips);
  });

  test('range and exclusions', () => {
    const p = parsePool({
      name: 'p', cidrs: ['10.0.0.0/24'], rangeStart: '10.0.0.60', rangeEnd: '10.0.0.70',
      exclude: ['10.0.0.64/30', '10.0.0.69'], gateway: '10.0.0.1',
    });
    const blocks = [...blocksOf(p, 'v4')];
    expect(blocks.map((b) => formatCidr(b.cidr))).toEqual(['10.0.0.0/26', '10.0.0.64/26']);
    expect(blocks.flatMap(usableIps)).toEqual(['10.0.0.60', '10.0.0.61', '10.0.0.62', '10.0.0.63', '10.0.0.68', '10.0.0.70']);
    expect(poolCapacity(p, 'v4')).toBe(6n);
    expect(usableCount(blocks[1] as BlockGeom)).toBe(2);
    const g = blockOfIp(p, parseIp('10.0.0.65')) as BlockGeom;
    expect(isUsable(g, 1)).toBe(false);
    expect(isUsable(g, 4)).toBe(true);
  });

  test('a range deep in a huge IPv6 CIDR costs no walk', () => {
    const p = parsePool({ name: 'p', cidrs: ['fd00::/48'], rangeStart: 'fd00::ffff:0:0', rangeEnd: 'fd00::ffff:0:ff' });
    const blocks = [...blocksOf(p, 'v6')];
    expect(blocks.map((b) => formatCidr(b.cidr))).toEqual([
      'fd00::ffff:0:0/122', 'fd00::ffff:0:40/122', 'fd00::ffff:0:80/122', 'fd00::ffff:0:c0/122']);
    expect(poolCapacity(p, 'v6')).toBe(256n);
  });

  test('block keys round trip and name the pool', () => {
    const p = parsePool({ name: 'blue', cidrs: ['10.0.0.0/24', 'fd00::/64'] });
    for (const ip of ['10.0.0.77', 'fd00::1234']) {
      const g = blockOfIp(p, parseIp(ip)) as BlockGeom;
      expect(blockByKey(p, g.key)?.cidr).toEqual(g.cidr);
    }
    expect(blockOfIp(p, parseIp('10.0.0.77'))?.key).toBe('blue:10.0.0.64-26');
    expect(blockByKey(p, 'red:10.0.0.64-26')).toBeUndefined();
    expect(blockByKey(p, 'blue:10.0.0.65-26')).toBeUndefined();
  });

  test.each([
    [{ cidrs: ['10.0.0.1/24'] }, /host bits/],
    [{ cidrs: ['10.0.0.0/24', '10.0.0.128/25'] }, /overlaps/],
    [{ cidrs: ['10.0.0.0/24'], rangeStart: '10.0.1.5' }, /rangeStart 10\.0\.1\.5 is in none/],
    [{ cidrs: ['10.0.0.0/24'], rangeStart: '10.0.0.9', rangeEnd: '10.0.0.8' }, /rangeStart is after rangeEnd/],
    [{ cidrs: ['10.0.0.0/24'], gateway: '10.1.0.1' }, /gateway 10\.1\.0\.1 is in none/],
    [{ cidrs: ['10.0.0.0/24'], gateway: ['10.0.0.1', '10.0.0.2'] }, /more than one v4 gateway/],
    [{ cidrs: ['10.0.0.0/8'], blockSize: 12 }, /too large/],
    [{ cidrs: ['10.0.0.0/24'], blockSize: 64 }, /IPv6 prefix/],
    [{ cidrs: ['10.0.0.0/24'], exclude: ['10.0.0.1/24'] }, /exclude\[0\]/],
    [{ cidrs: ['10.0.0.0/24'], routes: [{ dst: '0.0.0.0/0', gw: 'fd00::1' }] }, /different families/],
  ] as [Omit<PoolSpec, 'name'>, RegExp][])('rejects %j', (spec, re) => {
    expect(() => parsePool({ name: 'p', ...spec })).toThrow(re);
  });

  test('pools may not overlap each other or share a name', () => {
    expect(() => parsePoolList([{ name: 'a', cidrs: ['10.0.0.0/16'] }, { name: 'b', cidrs: ['10.0.5.0/24'] }])).toThrow(/pool b 10\.0\.5\.0\/24 overlaps pool a/);
    expect(() => parsePoolList([{ name: 'a', cidrs: ['10.0.0.0/24'] }, { name: 'a', cidrs: ['10.1.0.0/24'] }])).toThrow(/defined twice/);
  });
});

describe('ipam config schema', () => {
  test('local and etcd stores with pools', () => {
    expect(parseIpamConfig({ store: { type: 'local' }, pools: [{ name: 'a', cidrs: ['10.0.0.0/24'], blockSize: 28, strictAffinity: true }] }).pools[0]?.strictAffinity).toBe(true);
    expect(parseIpamConfig({ store: { type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/x' } }).pools).toEqual([]);
    expect(parseIpamConfig(undefined).pools).toEqual([]);
  });
  test.each([
    [{ store: { type: 'etcd' } }, /ipam\.store/],
    [{ store: { type: 'zookeeper' } }, /ipam\.store/],
    [{ pools: [{ name: 'a' }] }, /ipam\.pools\[0\]/],
    [{ pools: [{ name: 'A:b', cidrs: ['10.0.0.0/24'] }] }, /ipam\.pools\[0\]\.name/],
    [{ pools: [{ name: 'a', cidrs: ['10.0.0.0/24'], colour: 'red' }] }, /ipam\.pools\[0\]\.colour is not a known field/],
    [{ pools: [{ name: 'a', cidrs: ['10.0.0.0/24'], blockSize: 'big' }] }, /ipam\.pools\[0\]\.blockSize/],
    [{ pools: [{ name: 'a', cidrs: ['10.0.0.1/24'] }] }, /host bits/],
  ])('rejects %j naming the field', (cfg, re) => {
    expect(() => parseIpamConfig(cfg)).toThrow(re);
  });

  test('IPPool manifests become pool specs', () => {
    const spec = poolSpecFromManifest({ apiVersion: 'plexus.io/v1alpha1', kind: 'IPPool', metadata: { name: 'blue' }, spec: { cidrs: ['10.0.0.0/24'] } });
    expect(spec).toEqual({ name: 'blue', cidrs: ['10.0.0.0/24'] });
    expect(() => poolSpecFromManifest({ apiVersion: 'plexus.io/v1alpha1', kind: 'IPPool', metadata: { name: 'b' }, spec: {} })).toThrow(/IPPool\.spec/);
  });

  test('the CRD carries exactly the schema fields', () => {
    const crd = yaml.load(fs.readFileSync(path.join(__dirname, '../../crds/plexus-ippool.yaml'), 'utf8')) as any;
    expect(crd.spec.group).toBe('plexus.io');
    expect(crd.spec.names.kind).toBe('IPPool');
    const version = crd.spec.versions[0];
    expect(version.name).toBe('v1alpha1');
    const spec = version.schema.openAPIV3Schema.properties.spec;
    expect(Object.keys(spec.properties).sort()).toEqual(Object.keys(POOL_SPEC_SCHEMA.properties).sort());
    expect(spec.required).toEqual([...POOL_SPEC_SCHEMA.required]);
    for (const [k, v] of Object.entries(POOL_SPEC_SCHEMA.properties)) {
      const crdField = spec.properties[k];
      if ('type' in v) expect(crdField.type).toBe(v.type);
      else expect(crdField['x-kubernetes-preserve-unknown-fields']).toBe(true);
    }
  });
});
