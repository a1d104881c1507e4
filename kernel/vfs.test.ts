/**
 * The VF requests against what iproute2 sends for the same change, byte for byte: `ip link set dev PF vf N ...`
 * runs under strace on a veth (whose driver refuses VF settings, so nothing changes) and the datagram it sent
 * is compared with ours, sequence number and port id aside. IFLA_VFINFO_LIST decoding is checked against a list
 * a C program builds with the kernel's own structs and RTA macros (the struct-parity helpers).
 */
import { execFileSync } from 'node:child_process';
import { findCompiler } from '../test/helpers/c-parity';
import { describeAsRoot, ip, ipJson, NetnsScope, type TestNetns } from '../test/helpers/netns';
import { socketWith } from '../test/helpers/recording-kernel';
import { decodeAttrs, IFLA_VF_MAC_STRUCT, VF_MAC_BYTES } from './netlink/codec';
import { IFLA, RTM } from './netlink/constants';
import { decodeVfInfoList, setVf, type VfChange } from './vfs';
import { Netlink } from './index';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The last RTM_NEWLINK datagram `ip` sent, from `strace -e write=all -xx` hex dump lines. */
function iproute2Sends(ns: TestNetns, args: string[]): Buffer {
  let out: string;
  try {
    out = execFileSync('strace', ['-f', '-e', 'trace=sendmsg', '-e', 'write=all', '-xx', '-s', '0', 'ip', '-n', ns.name, 'link', 'set', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    out = (e as { stderr: string }).stderr; // the veth refuses: ip exits 2 after sending
  }
  const datagrams: Buffer[] = [];
  let current: number[] | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('sendmsg(')) {
      current = [];
      datagrams.push(Buffer.alloc(0));
      continue;
    }
    const m = /^ \| [0-9a-f]{5} {2}((?:[0-9a-f]{2} ?){1,8})(?: {1,2}((?:[0-9a-f]{2} ?){1,8}))?/.exec(line);
    if (!m || !current) continue;
    current.push(...`${m[1]} ${m[2] ?? ''}`.trim().split(/\s+/).map((h) => parseInt(h, 16)));
    datagrams[datagrams.length - 1] = Buffer.from(current);
  }
  const newlink = datagrams.filter((d) => d.length >= 16 && d.readUInt16LE(4) === RTM.NEWLINK);
  if (newlink.length === 0) throw new Error(`no RTM_NEWLINK in strace output:\n${out}`);
  return newlink[newlink.length - 1]!;
}

/** Sequence number and port id differ between any two senders. */
const withoutSeq = (b: Buffer): string => {
  const c = Buffer.from(b);
  c.fill(0, 8, 16);
  return c.toString('hex');
};

const CASES: Array<[string[], VfChange]> = [
  [['mac', '02:00:00:00:00:01'], { kind: 'mac', mac: '02:00:00:00:00:01' }],
  [['vlan', '100'], { kind: 'vlan', vlan: 100, qos: 0, proto: '802.1Q' }],
  [['vlan', '100', 'qos', '3'], { kind: 'vlan', vlan: 100, qos: 3, proto: '802.1Q' }],
  [['vlan', '4094', 'qos', '7', 'proto', '802.1ad'], { kind: 'vlan', vlan: 4094, qos: 7, proto: '802.1ad' }],
  [['vlan', '0'], { kind: 'vlan', vlan: 0, qos: 0, proto: '802.1Q' }],
  [['min_tx_rate', '10', 'max_tx_rate', '100'], { kind: 'rate', minTxRate: 10, maxTxRate: 100 }],
  [['min_tx_rate', '0', 'max_tx_rate', '0'], { kind: 'rate', minTxRate: 0, maxTxRate: 0 }],
  [['spoofchk', 'on'], { kind: 'spoofchk', on: true }],
  [['spoofchk', 'off'], { kind: 'spoofchk', on: false }],
  [['trust', 'on'], { kind: 'trust', on: true }],
  [['trust', 'off'], { kind: 'trust', on: false }],
  [['state', 'auto'], { kind: 'linkState', state: 'auto' }],
  [['state', 'enable'], { kind: 'linkState', state: 'enable' }],
  [['state', 'disable'], { kind: 'linkState', state: 'disable' }],
];

describeAsRoot('VF requests are what iproute2 sends', () => {
  const scope = new NetnsScope();
  let ns: TestNetns;
  let pfIndex: number;

  beforeAll(() => {
    ns = scope.make('plx-vf');
    ip(ns, 'link', 'add', 'pf0', 'type', 'veth', 'peer', 'name', 'pf0peer');
    pfIndex = ipJson<Array<{ ifindex: number }>>(ns, 'link', 'show', 'dev', 'pf0')[0]!.ifindex;
  });
  afterAll(() => scope.cleanup());

  test.each(CASES.map(([args, change]) => [args.join(' '), args, change] as const))('vf 3 %s', (_label, args, change) => {
    const theirs = iproute2Sends(ns, ['dev', 'pf0', 'vf', '3', ...args]);
    const { sock, kernel } = socketWith();
    setVf(sock, pfIndex, 3, change);
    expect(withoutSeq(kernel.datagrams[0]!)).toBe(withoutSeq(theirs));
  });

  test('the kernel refuses VF settings on a veth with EOPNOTSUPP, named in the error', async () => {
    const nl = Netlink.openSync(ns.path);
    try {
      await expect(nl.setVf('pf0', 0, { kind: 'trust', on: true })).rejects.toThrow(/set link pf0 vf 0 trust on.*EOPNOTSUPP/);
      await expect(nl.listVfs('pf0')).resolves.toEqual([]);
    } finally {
      nl.close();
    }
  });
});

describe('VF requests refuse bad values before sending', () => {
  test.each([
    [{ kind: 'vlan', vlan: 4095, qos: 0, proto: '802.1Q' }, /invalid VLAN 4095/],
    [{ kind: 'vlan', vlan: 10, qos: 8, proto: '802.1Q' }, /invalid QoS 8/],
    [{ kind: 'rate', minTxRate: -1, maxTxRate: 0 }, /invalid min_tx_rate -1/],
    [{ kind: 'mac', mac: '02:00:00:00:00' }, /invalid MAC/],
  ] as Array<[VfChange, RegExp]>)('%j', (change, message) => {
    const { sock, kernel } = socketWith();
    expect(() => setVf(sock, 2, 0, change)).toThrow(message);
    expect(kernel.sent).toHaveLength(0);
  });
});

/** A C program writing an IFLA_VFINFO_LIST for two VFs with the kernel's structs, as hex. */
const VFINFO_C = String.raw`
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_ether.h>
static unsigned char buf[4096];
static int len;
static struct rtattr *put(int type, const void *data, int n) {
  struct rtattr *rta = (struct rtattr *)(buf + len);
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(n);
  if (data) memcpy(RTA_DATA(rta), data, n);
  len += RTA_ALIGN(rta->rta_len);
  return rta;
}
static void end(struct rtattr *nest) { nest->rta_len = (buf + len) - (unsigned char *)nest; }
static void vf(unsigned v, const unsigned char mac[6], unsigned vlan, unsigned qos, unsigned short proto,
               unsigned min, unsigned max, unsigned spoof, unsigned trust, unsigned state) {
  struct rtattr *info = put(IFLA_VF_INFO, NULL, 0);
  struct ifla_vf_mac m = { .vf = v }; memcpy(m.mac, mac, 6); put(IFLA_VF_MAC, &m, sizeof m);
  struct ifla_vf_vlan vl = { .vf = v, .vlan = vlan, .qos = qos }; put(IFLA_VF_VLAN, &vl, sizeof vl);
  struct rtattr *list = put(IFLA_VF_VLAN_LIST, NULL, 0);
  struct ifla_vf_vlan_info vi = { .vf = v, .vlan = vlan, .qos = qos, .vlan_proto = htons(proto) };
  put(IFLA_VF_VLAN_INFO, &vi, sizeof vi); end(list);
  struct ifla_vf_tx_rate tx = { .vf = v, .rate = max }; put(IFLA_VF_TX_RATE, &tx, sizeof tx);
  struct ifla_vf_rate r = { .vf = v, .min_tx_rate = min, .max_tx_rate = max }; put(IFLA_VF_RATE, &r, sizeof r);
  struct ifla_vf_spoofchk s = { .vf = v, .setting = spoof }; put(IFLA_VF_SPOOFCHK, &s, sizeof s);
  struct ifla_vf_link_state ls = { .vf = v, .link_state = state }; put(IFLA_VF_LINK_STATE, &ls, sizeof ls);
  struct ifla_vf_rss_query_en q = { .vf = v, .setting = (unsigned)-1 }; put(IFLA_VF_RSS_QUERY_EN, &q, sizeof q);
  struct ifla_vf_trust t = { .vf = v, .setting = trust }; put(IFLA_VF_TRUST, &t, sizeof t);
  end(info);
}
int main(void) {
  struct rtattr *list = put(IFLA_VFINFO_LIST, NULL, 0);
  const unsigned char mac1[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01}, zero[6] = {0};
  vf(1, mac1, 4094, 7, ETH_P_8021AD, 10, 2500, 0, 1, IFLA_VF_LINK_STATE_DISABLE);
  vf(0, zero, 100, 3, ETH_P_8021Q, 0, 0, 1, (unsigned)-1, IFLA_VF_LINK_STATE_AUTO);
  end(list);
  printf("mac.offset=%zu\nmac.size=%zu\n", offsetof(struct ifla_vf_mac, mac), sizeof(((struct ifla_vf_mac *)0)->mac));
  for (int i = 0; i < len; i++) printf("%02x", buf[i]);
  printf("\n");
  return 0;
}
`;

describe('IFLA_VFINFO_LIST decoding', () => {
  let hex = '';
  let layout = new Map<string, number>();

  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), 'plx-vfinfo-'));
    try {
      writeFileSync(join(dir, 'vfinfo.c'), VFINFO_C);
      execFileSync(findCompiler(), ['-o', join(dir, 'vfinfo'), join(dir, 'vfinfo.c')]);
      const lines = execFileSync(join(dir, 'vfinfo'), { encoding: 'utf8' }).trim().split('\n');
      hex = lines.pop()!;
      layout = new Map(lines.map((l) => [l.split('=')[0]!, Number(l.split('=')[1])]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("ifla_vf_mac's MAC bytes are where kernel/vfs.ts copies them", () => {
    expect({ offset: layout.get('mac.offset'), size: layout.get('mac.size') }).toEqual(VF_MAC_BYTES);
    expect(IFLA_VF_MAC_STRUCT.size).toBe(VF_MAC_BYTES.offset + VF_MAC_BYTES.size);
  });

  test('every setting of every VF, in index order; unreported settings absent', () => {
    const [list] = decodeAttrs(Buffer.from(hex, 'hex'));
    expect(list!.type).toBe(IFLA.VFINFO_LIST);
    expect(decodeVfInfoList(list!)).toEqual([
      { vf: 0, mac: '00:00:00:00:00:00', vlan: 100, qos: 3, vlanProto: '802.1Q', minTxRate: 0, maxTxRate: 0, spoofchk: true, linkState: 'auto' },
      {
        vf: 1, mac: '02:aa:bb:cc:dd:01', vlan: 4094, qos: 7, vlanProto: '802.1ad', minTxRate: 10, maxTxRate: 2500,
        spoofchk: false, trust: true, linkState: 'disable',
      },
    ]);
  });

  test('an empty list is no VF', () => {
    expect(decodeVfInfoList({ type: IFLA.VFINFO_LIST, nested: false, data: Buffer.alloc(0) })).toEqual([]);
  });
});
