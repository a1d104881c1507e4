/**
 * The engine's policy on the wire: the blob's records are the sizes addon/policy.h reads (compiled and printed,
 * STYLE 12), laid out as it reads them, and a policy a sender gets wrong is refused naming the field.
 */
import { join } from 'node:path';
import { compileAndRun } from '../test/helpers/c-parity';
import { thrownBy } from '../test/helpers/thrown';
import { BLOB, type EnginePolicy, ISOLATED, parseEnginePolicy, policyBlob } from './policy-wire';

const policy = (over: Partial<EnginePolicy> = {}): EnginePolicy => ({
  revision: 'r', networks: ['n'], endpoints: [{ network: 'n', id: 3, ips: ['10.0.0.2', 'fd00::2'], ports: ['abc-net1'], isolated: ['ingress', 'egress'] }], otherPorts: ['def-net1'],
  ipcache: [['n', '10.0.0.1', 17]], cidrs: [[6, '192.168.0.0/16', 0x8000_0000]], rules: [[6, 17, 6, 80, 56]], ...over,
});

test('record sizes and constants are addon/policy.h\'s', () => {
  const names = ['MAGIC', 'VERSION', 'HEADER_LEN', 'NETWORK_LEN', 'PORT_LEN', 'PORT_NAME', 'NO_ENDPOINT', 'LOCAL_LEN', 'IDENT_LEN', 'CIDR_LEN', 'RULE_LEN', 'ISOLATED_INGRESS', 'ISOLATED_EGRESS'];
  const got = compileAndRun(`#include <stdio.h>\n#include "policy.h"\nint main(void) {\n${names.map((n) => `printf("${n}=%u\\n", (unsigned)PX_POL_${n});`).join('\n')}\nreturn 0; }\n`, [join(__dirname, 'addon')]);
  expect(Object.fromEntries(got)).toEqual({
    MAGIC: BLOB.magic, VERSION: BLOB.version, HEADER_LEN: BLOB.header, NETWORK_LEN: BLOB.network, PORT_LEN: BLOB.port, PORT_NAME: BLOB.portName, NO_ENDPOINT: BLOB.noEndpoint, LOCAL_LEN: BLOB.local, IDENT_LEN: BLOB.ident,
    CIDR_LEN: BLOB.cidr, RULE_LEN: BLOB.rule, ISOLATED_INGRESS: ISOLATED.ingress, ISOLATED_EGRESS: ISOLATED.egress,
  });
});

test('the blob: header counts, then each record where the addon reads it', () => {
  const b = policyBlob(policy(), (n) => (n === 'n' ? 5 : 99));
  const counts = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => b.readUInt32LE(i * 4));
  expect(counts).toEqual([BLOB.magic, BLOB.version, 1, 2, 2, 1, 1, 1]); // two ports (one another pod's), two locals: one per address
  expect(b.length).toBe(BLOB.header + BLOB.network + 2 * BLOB.port + 2 * BLOB.local + BLOB.ident + BLOB.cidr + BLOB.rule);
  let o = BLOB.header;
  expect(b.readUInt32LE(o)).toBe(5);
  o += BLOB.network;
  // port: endpoint id, flags, name NUL-padded
  expect([b.readUInt32LE(o), b.readUInt32LE(o + 4), b.subarray(o + 8, o + 8 + BLOB.portName).toString('latin1')]).toEqual([3, 3, 'abc-net1'.padEnd(BLOB.portName, '\0')]);
  o += BLOB.port;
  expect([b.readUInt32LE(o), b.readUInt32LE(o + 4), b.subarray(o + 8, o + 16).toString('latin1')]).toEqual([BLOB.noEndpoint, 0, 'def-net1']);
  o += BLOB.port;
  // local: network, ::ffff:10.0.0.2, id, flags
  expect([b.readUInt32LE(o), b.subarray(o + 4, o + 20).toString('hex'), b.readUInt32LE(o + 20), b.readUInt32LE(o + 24)]).toEqual([5, '00000000000000000000ffff0a000002', 3, 3]);
  o += BLOB.local;
  expect(b.subarray(o + 4, o + 20).toString('hex')).toBe('fd000000000000000000000000000002');
  o += BLOB.local + BLOB.ident;
  // cidr: epdir, family, prefix, address, class
  expect([b.readUInt32LE(o), b[o + 4], b[o + 5], b.subarray(o + 6, o + 22).toString('hex'), b.readUInt32LE(o + 22)]).toEqual([6, 0, 16, '00000000000000000000ffffc0a80000', 0x8000_0000]);
  o += BLOB.cidr;
  // rule: epdir, length, [peer 32 | proto 8 | port 16]
  expect([b.readUInt32LE(o), b[o + 4], b.readBigUInt64LE(o + 5)]).toEqual([6, 56, (17n << 24n) | (6n << 16n) | 80n]);
});

test.each([
  [{ networks: ['has space'] }, /networks\/0 must match/],
  [{ endpoints: [{ network: 'n', id: 1, ips: ['10.0.0.999'], ports: [], isolated: [] }] }, /endpoints\[0\]\.ips "10\.0\.0\.999" is not a valid/],
  [{ endpoints: [{ network: 'n', id: 1, ips: [], ports: ['a,b'], isolated: [] }] }, /endpoints\/0\/ports\/0 must match/],
  [{ endpoints: [{ network: 'n', id: 65535, ips: [], ports: [], isolated: [] }] }, /endpoints\/0\/id must be <= 65534/],
  [{ ipcache: [['n', '10.0.0.1']] }, /ipcache\/0 must NOT have fewer than 3 items/],
  [{ cidrs: [[0, '10.0.0.1/8', 1]] }, /cidrs\[0\] "10\.0\.0\.1\/8" has host bits set/],
  [{ rules: [[0, 1, 6, 70000, 56]] }, /rules\/0\/3 must be <= 65535/],
  [{ rules: [[0, 1, 6, 80, 57]] }, /rules\/0\/4 must be <= 56/],
  [{ extra: 1 }, /must NOT have additional properties "extra"/],
])('a bad policy is refused naming the field: %j', (over, why) => {
  expect(thrownBy(() => parseEnginePolicy({ ...policy(), ...over }))).toMatchObject({ kind: 'InvalidConfig', message: expect.stringMatching(why) });
});
