/**
 * The kernel layer against the real kernel (root): two fresh network namespaces per test, every operation
 * done through `Netlink` and checked with `ip -j` as the independent witness, and the reverse (made with `ip`,
 * read through `Netlink`). After every test the calling thread must still be in the host netns.
 */
import { readlinkSync, statSync } from 'node:fs';
import {
  type KernelError,
  isNetns,
  Netlink,
  NTF,
  NUD,
  openNetns,
  readSysctl,
  RT_SCOPE,
  RT_TABLE,
  RTN,
  RTPROT,
  runProgram,
  writeSysctl,
} from '../../kernel';
import { describeAsRoot, ip, ipJson, NetnsScope, randomIfName, run, runIn, type TestNetns } from '../helpers/netns';

interface IpLink {
  ifindex: number;
  ifname: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  altnames?: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}
interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
  router?: null;
}
interface IpAddr {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
  nodad?: boolean;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  flags: string[];
  type?: string;
}

const threadNetns = (): string => readlinkSync('/proc/thread-self/ns/net');
const HOST_NETNS = threadNetns();

// The witnesses.
const ipLinks = (ns: TestNetns): IpLink[] => ipJson<IpLink[]>(ns, '-d', 'link', 'show');
const ipLink = (ns: TestNetns, name: string): IpLink | undefined => ipLinks(ns).find((l) => l.ifname === name);
const ipAddrs = (ns: TestNetns, dev: string): IpAddr[] =>
  ipJson<Array<{ addr_info: IpAddr[] }>>(ns, 'addr', 'show', 'dev', dev)[0]?.addr_info ?? [];
const ipNeighs = (ns: TestNetns, dev: string): IpNeigh[] => ipJson<IpNeigh[]>(ns, 'neigh', 'show', 'dev', dev);
const sysctlIn = (ns: TestNetns, key: string): string => runIn(ns, 'sysctl', ['-n', key.replaceAll('/', '.')]).trim();
const ipRoutes = (ns: TestNetns, family: 4 | 6, table: number | string = 'main'): IpRoute[] =>
  ipJson<IpRoute[]>(ns, `-${family}`, 'route', 'show', 'table', String(table));

/** Waits (bounded) for the kernel's asynchronous follow-ups, such as operstate tracking IFF_UP. */
async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
}

/** Runs the rejected call and returns its KernelError. */
async function failure(call: Promise<unknown>): Promise<KernelError> {
  try {
    await call;
  } catch (err) {
    return err as KernelError;
  }
  throw new Error('expected the call to fail');
}

describeAsRoot('kernel layer (rtnetlink in real network namespaces)', () => {
  const scope = new NetnsScope();
  let a: TestNetns;
  let b: TestNetns;
  let nl: Netlink; // acts on a
  let nlB: Netlink; // acts on b

  beforeEach(async () => {
    a = scope.make('plx-k');
    b = scope.make('plx-k');
    nl = await Netlink.open(a.path);
    scope.defer(() => nl.close());
    nlB = await Netlink.open(b.path);
    scope.defer(() => nlB.close());
  });

  afterEach(() => {
    scope.cleanup();
    expect(threadNetns()).toBe(HOST_NETNS);
  });

  /** A veth pair inside a, both ends up and settled (operstate follows IFF_UP asynchronously), as most tests need. */
  async function upPair(): Promise<[string, string]> {
    const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
    await nl.createVeth(x, y);
    await nl.setLinkUp(x, true);
    await nl.setLinkUp(y, true);
    await settle(() => [x, y].every((n) => ipLink(a, n)?.operstate === 'UP'));
    return [x, y];
  }

  describe('netns', () => {
    test('runProgram starts a program inside the netns given, and the daemon thread stays in its own', async () => {
      const { ino } = statSync(a.path);
      const run = await runProgram('/bin/sh', ['-c', 'readlink /proc/self/ns/net'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, input: '', timeoutMs: 10_000, netnsPath: a.path });
      expect(run.stdout).toBe(`net:[${ino}]\n`);
      expect(threadNetns()).toBe(HOST_NETNS);
    });

    test('isNetns tells network namespace files from everything else', () => {
      expect(isNetns(a.path)).toBe(true);
      expect(isNetns('/proc/self/ns/net')).toBe(true);
      expect(isNetns('/proc/self/ns/mnt')).toBe(false);
      expect(isNetns('/etc/hostname')).toBe(false);
      expect(isNetns('/run/netns')).toBe(false);
      expect(isNetns(`/run/netns/plx-k-missing-${Date.now()}`)).toBe(false);
    });

    test.each([
      ['a missing path', '/run/netns/plx-k-does-not-exist', 'ENOENT'],
      ['a regular file', '/etc/hostname', 'EINVAL'],
      ['a mount namespace', '/proc/self/ns/mnt', 'EINVAL'],
    ])('opening %s fails with %s and leaves the thread at home', async (_name, path, errnoName) => {
      expect(await failure(Netlink.open(path))).toMatchObject({ kind: 'KernelFailure', errnoName });
      expect(threadNetns()).toBe(HOST_NETNS);
    });

    test('a fresh netns holds only lo; the host handle sees the host links', async () => {
      expect((await nl.listLinks()).map((l) => l.name)).toEqual(['lo']);
      const host = await Netlink.open(null);
      try {
        // Other suites may add or remove host links meanwhile: bracket the API's view between two ip views.
        const hostNames = (): Set<string> => new Set(ipJson<IpLink[]>(null, 'link', 'show').map((l) => l.ifname));
        const before = hostNames();
        const names = (await host.listLinks()).map((l) => l.name);
        const after = hostNames();
        expect(names).toContain('lo');
        for (const n of names) expect(before.has(n) || after.has(n)).toBe(true);
        for (const n of before) if (after.has(n)) expect(names).toContain(n);
      } finally {
        host.close();
      }
    });

    test('the calling thread is back in the host netns after every call, failed ones included', async () => {
      const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
      const steps: Array<[string, () => Promise<unknown>]> = [
        ['open', () => Netlink.open(b.path).then((h) => h.close())],
        ['createVeth', () => nl.createVeth(x, y, { peerNetnsPath: b.path })],
        ['listLinks', () => nl.listLinks()],
        ['getLink', () => nl.getLink(x)],
        ['setLinkUp', () => nl.setLinkUp(x, true)],
        ['setMtu', () => nl.setMtu(x, 1400)],
        ['setMac', () => nl.setMac(x, '02:00:00:00:aa:01')],
        ['addAddress', () => nl.addAddress(x, '10.77.0.1/24')],
        ['listAddresses', () => nl.listAddresses()],
        ['addRoute', () => nl.addRoute({ dst: '10.78.0.0/16', ifName: x })],
        ['listRoutes', () => nl.listRoutes({ table: 'all' })],
        ['replaceRoute', () => nl.replaceRoute({ dst: '10.78.0.0/16', ifName: x, metric: 5 })],
        ['deleteRoute', () => nl.deleteRoute({ dst: '10.78.0.0/16', metric: 5 })],
        ['deleteAddress', () => nl.deleteAddress(x, '10.77.0.1/24')],
        ['failing setMtu', () => nl.setMtu('plx-missing', 1400).catch(() => undefined)],
        ['failing open', () => Netlink.open('/etc/hostname').catch(() => undefined)],
        ['moveLinkToNetns', () => nlB.moveLinkToNetns(y, a.path)],
        ['deleteLink', () => nl.deleteLink(x)],
      ];
      for (const [name, step] of steps) {
        await step();
        expect([name, threadNetns()]).toEqual([name, HOST_NETNS]);
      }
    });

    test('a closed handle refuses with EBADF', async () => {
      const h = await Netlink.open(a.path);
      h.close();
      h.close();
      expect(await failure(h.listLinks())).toMatchObject({ errnoName: 'EBADF' });
    });
  });

  describe('links', () => {
    test('createVeth in one netns: both ends, kind, MTU and MAC as ip sees them', async () => {
      const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
      await nl.createVeth(x, y, { mtu: 1400, mac: '02:00:00:00:00:01', peerMac: '02:00:00:00:00:02' });
      const [ix, iy] = [ipLink(a, x), ipLink(a, y)];
      expect(ix).toMatchObject({ mtu: 1400, address: '02:00:00:00:00:01', link: y, linkinfo: { info_kind: 'veth' } });
      expect(iy).toMatchObject({ mtu: 1400, address: '02:00:00:00:00:02', link: x, linkinfo: { info_kind: 'veth' } });
      const link = await nl.getLink(x);
      expect(link).toMatchObject({ index: ix!.ifindex, name: x, kind: 'veth', mtu: 1400, mac: '02:00:00:00:00:01', linkIndex: iy!.ifindex, up: false });
    });

    test('createVeth puts the peer straight into another netns, by path or by fd', async () => {
      const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
      await nl.createVeth(x, y, { peerNetnsPath: b.path, peerMac: '02:00:00:00:00:0b' });
      expect(ipLink(a, y)).toBeUndefined();
      expect(ipLink(b, y)).toMatchObject({ address: '02:00:00:00:00:0b', link_index: ipLink(a, x)!.ifindex });
      expect(await nl.getLink(x)).toMatchObject({ linkIndex: ipLink(b, y)!.ifindex, linkNetnsId: expect.any(Number) });

      const [p, q] = [randomIfName('plxc'), randomIfName('plxd')];
      const target = openNetns(b.path);
      try {
        await nl.createVeth(p, q, { peerNetnsFd: target.fd });
      } finally {
        target.close();
      }
      expect(ipLink(b, q)?.link_index).toBe(ipLink(a, p)!.ifindex);
    });

    test('setLinkUp, setMtu, setMac and renameLink change what ip shows', async () => {
      const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
      await nl.createVeth(x, y);
      await nl.setLinkUp(x, true);
      await nl.setLinkUp(y, true);
      expect(ipLink(a, x)?.flags).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));
      await settle(() => ipLink(a, x)?.operstate === 'UP');
      expect(await nl.getLink(x)).toMatchObject({ up: true, lowerUp: true, operState: 'UP' });

      await nl.setMtu(x, 9000);
      await nl.setMac(x, '02:aa:bb:cc:dd:ee');
      expect(ipLink(a, x)).toMatchObject({ mtu: 9000, address: '02:aa:bb:cc:dd:ee' });

      await nl.setLinkUp(x, false);
      expect(ipLink(a, x)?.flags).not.toContain('UP');
      await settle(() => ipLink(a, y)?.operstate === 'LOWERLAYERDOWN');
      expect(ipLink(a, y)?.operstate).toBe('LOWERLAYERDOWN');
      expect(await nl.getLink(y)).toMatchObject({ up: true, lowerUp: false, operState: 'LOWERLAYERDOWN' });

      const index = ipLink(a, x)!.ifindex;
      const renamed = randomIfName('plxr');
      await nl.renameLink(x, renamed);
      expect(ipLink(a, renamed)?.ifindex).toBe(index);
      const again = randomIfName('plxs');
      await nl.renameLink(index, again);
      expect(ipLink(a, again)?.ifindex).toBe(index);
      expect(await nl.getLink(index)).toMatchObject({ name: again });
    });

    test('getLink by name and by index agrees with listLinks; a missing link is undefined', async () => {
      const [x] = await upPair();
      const listed = (await nl.listLinks()).find((l) => l.name === x)!;
      expect(await nl.getLink(x)).toEqual(listed);
      expect(await nl.getLink(listed.index)).toEqual(listed);
      expect(await nl.getLink('plx-missing')).toBeUndefined();
      expect(await nl.getLink(99999)).toBeUndefined();
    });

    test('deleteLink removes both veth ends and is false the second time', async () => {
      const [x, y] = await upPair();
      expect(await nl.deleteLink(x)).toBe(true);
      expect(ipLink(a, x)).toBeUndefined();
      expect(ipLink(a, y)).toBeUndefined();
      expect(await nl.deleteLink(x)).toBe(false);
    });

    test('moveLinkToNetns moves a link, optionally renaming it; it is found again by name there', async () => {
      const [x, y] = [randomIfName('plxa'), randomIfName('plxb')];
      await nl.createVeth(x, y);
      await nl.moveLinkToNetns(y, b.path);
      expect(ipLink(a, y)).toBeUndefined();
      expect(ipLink(b, y)?.link_index).toBe(ipLink(a, x)!.ifindex);
      expect((await nlB.getLink(y))?.index).toBe(ipLink(b, y)!.ifindex);

      const renamed = randomIfName('plxm');
      await nlB.moveLinkToNetns(y, a.path, { newName: renamed });
      expect(ipLink(b, y)).toBeUndefined();
      expect(ipLink(a, renamed)?.link).toBe(x);
    });

    test('reverse: links made with ip read back through the API', async () => {
      const [x, y, br, mv] = [randomIfName('plxa'), randomIfName('plxb'), randomIfName('plxbr'), randomIfName('plxmv')];
      ip(a, 'link', 'add', x, 'mtu', '1450', 'type', 'veth', 'peer', 'name', y);
      ip(a, 'link', 'add', br, 'type', 'bridge');
      ip(a, 'link', 'set', x, 'master', br, 'up');
      ip(a, 'link', 'add', mv, 'link', y, 'type', 'macvlan', 'mode', 'bridge');
      ip(a, 'link', 'property', 'add', 'dev', x, 'altname', `${x}-alt`);

      // operstate settles asynchronously: compare it only where ip saw the same value before and after.
      const before = new Map(ipLinks(a).map((w) => [w.ifname, w.operstate]));
      const links = await nl.listLinks();
      const byName = new Map(links.map((l) => [l.name, l]));
      for (const w of ipLinks(a)) {
        const l = byName.get(w.ifname);
        expect(l).toMatchObject({ index: w.ifindex, mtu: w.mtu, mac: w.address });
        if (before.get(w.ifname) === w.operstate) expect(l?.operState).toBe(w.operstate);
        expect(l?.up).toBe(w.flags.includes('UP'));
        expect(l?.kind).toBe(w.linkinfo?.info_kind);
      }
      const index = (n: string): number => byName.get(n)!.index;
      expect(byName.get(x)).toMatchObject({ kind: 'veth', masterIndex: index(br), linkIndex: index(y), altNames: [`${x}-alt`], mtu: 1450 });
      expect(byName.get(mv)).toMatchObject({ kind: 'macvlan', linkIndex: index(y) });
      expect(byName.get(br)).toMatchObject({ kind: 'bridge' });
      expect(byName.get('lo')?.kind).toBeUndefined();
    });

    test.each([
      ['setMtu on a missing link', (n: Netlink) => n.setMtu('plx-missing', 1400), 'ENODEV'],
      ['setLinkUp on a missing index', (n: Netlink) => n.setLinkUp(99999, true), 'ENODEV'],
      ['renameLink of a missing link', (n: Netlink) => n.renameLink('plx-missing', 'plx-other'), 'ENODEV'],
      ['an interface name of 16 bytes', (n: Netlink) => n.createVeth('plx-0123456789ab', 'plx-peer'), 'EINVAL'],
      ['an interface name with a slash', (n: Netlink) => n.setMtu('a/b', 1400), 'EINVAL'],
      ['a malformed MAC', (n: Netlink) => n.setMac('lo', '02:00:00:00:00'), 'EINVAL'],
      ['a peer netns that does not exist', (n: Netlink) => n.createVeth('plxa', 'plxb', { peerNetnsPath: '/run/netns/plx-k-none' }), 'ENOENT'],
      ['moving into a file that is no netns', (n: Netlink) => n.moveLinkToNetns('lo', '/etc/hostname'), 'EINVAL'],
    ])('%s is a typed %s', async (_name, call, errnoName) => {
      expect(await failure(call(nl))).toMatchObject({ kind: 'KernelFailure', errnoName });
    });

    test('a duplicate veth name is EEXIST, also when only the peer name is taken', async () => {
      const [x, y] = await upPair();
      expect(await failure(nl.createVeth(x, randomIfName('plxz')))).toMatchObject({ errnoName: 'EEXIST' });
      expect(await failure(nl.createVeth(randomIfName('plxz'), y))).toMatchObject({ errnoName: 'EEXIST' });
      expect(ipLinks(a).map((l) => l.ifname).sort()).toEqual(['lo', x, y].sort());
    });
  });

  describe('addresses', () => {
    test('add IPv4 and IPv6 addresses; ip sees them; listAddresses matches ip', async () => {
      const [x] = await upPair();
      await nl.addAddress(x, '10.80.0.1/24');
      await nl.addAddress(x, '2001:db8:80::1/64', { noDad: true });
      const seen = ipAddrs(a, x);
      expect(seen).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ family: 'inet', local: '10.80.0.1', prefixlen: 24, scope: 'global' }),
          expect.objectContaining({ family: 'inet6', local: '2001:db8:80::1', prefixlen: 64, scope: 'global', nodad: true }),
        ]),
      );
      const index = ipLink(a, x)!.ifindex;
      const listed = await nl.listAddresses(index);
      expect(listed.map((ad) => `${ad.address}/${ad.prefixLength}`).sort()).toEqual(seen.map((s) => `${s.local}/${s.prefixlen}`).sort());
      expect(listed.find((ad) => ad.address === '10.80.0.1')).toMatchObject({ ifindex: index, family: 4, scope: RT_SCOPE.UNIVERSE, label: x });
      expect(listed.find((ad) => ad.address.startsWith('fe80::'))).toMatchObject({ family: 6, prefixLength: 64, scope: RT_SCOPE.LINK });
    });

    test('deleteAddress removes it, then reports false', async () => {
      const [x] = await upPair();
      await nl.addAddress(x, '10.81.0.1/24');
      await nl.addAddress(x, '2001:db8:81::1/64');
      expect(await nl.deleteAddress(x, '10.81.0.1/24')).toBe(true);
      expect(await nl.deleteAddress(x, '2001:db8:81::1/64')).toBe(true);
      expect(ipAddrs(a, x).filter((s) => s.scope === 'global')).toEqual([]);
      expect(await nl.deleteAddress(x, '10.81.0.1/24')).toBe(false);
      expect(await nl.deleteAddress('plx-missing', '10.81.0.1/24')).toBe(false);
    });

    test('a duplicate address is EEXIST; an address on a missing link is ENODEV', async () => {
      const [x] = await upPair();
      await nl.addAddress(x, '10.82.0.1/24');
      expect(await failure(nl.addAddress(x, '10.82.0.1/24'))).toMatchObject({ kind: 'KernelFailure', errno: 17, errnoName: 'EEXIST' });
      expect(await failure(nl.addAddress('plx-missing', '10.82.0.2/24'))).toMatchObject({ errnoName: 'ENODEV' });
      expect(await failure(nl.addAddress(x, '10.82.0.1/33'))).toMatchObject({ errnoName: 'EINVAL' });
    });

    test('reverse: addresses made with ip read back through the API', async () => {
      const [x] = await upPair();
      ip(a, 'addr', 'add', '10.83.0.7/20', 'dev', x);
      ip(a, '-6', 'addr', 'add', '2001:db8:83::7/80', 'dev', x, 'nodad');
      const listed = await nl.listAddresses();
      expect(listed).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ family: 4, address: '10.83.0.7', prefixLength: 20 }),
          expect.objectContaining({ family: 6, address: '2001:db8:83::7', prefixLength: 80 }),
        ]),
      );
    });
  });

  describe('routes', () => {
    /** A pair with addresses on x, so routes via 10.90.0.2 / 2001:db8:90::2 are reachable. */
    async function addressedPair(): Promise<[string, string]> {
      const pair = await upPair();
      await nl.addAddress(pair[0], '10.90.0.1/24');
      await nl.addAddress(pair[0], '2001:db8:90::1/64', { noDad: true });
      return pair;
    }

    test('IPv4: device route, gateway route with metric, default route, onlink and another table', async () => {
      const [x] = await addressedPair();
      await nl.addRoute({ dst: '10.91.0.0/16', ifName: x });
      await nl.addRoute({ dst: '10.92.0.0/16', gateway: '10.90.0.2', metric: 20 });
      await nl.addRoute({ dst: 'default', gateway: '10.90.0.254' });
      await nl.addRoute({ dst: '10.93.0.0/16', gateway: '192.0.2.1', ifName: x, onlink: true });
      await nl.addRoute({ dst: '10.94.0.0/16', gateway: '10.90.0.3', table: 100 });
      const seen = ipRoutes(a, 4);
      expect(seen).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '10.91.0.0/16', dev: x, scope: 'link' }),
          expect.objectContaining({ dst: '10.92.0.0/16', gateway: '10.90.0.2', dev: x, metric: 20 }),
          expect.objectContaining({ dst: 'default', gateway: '10.90.0.254', dev: x }),
          expect.objectContaining({ dst: '10.93.0.0/16', gateway: '192.0.2.1', flags: ['onlink'] }),
        ]),
      );
      expect(ipRoutes(a, 4, 100)).toEqual([expect.objectContaining({ dst: '10.94.0.0/16', gateway: '10.90.0.3' })]);

      const listed = await nl.listRoutes({ family: 4 });
      expect(listed.map((r) => r.dst).sort()).toEqual(seen.map((r) => r.dst).sort());
      expect(listed.find((r) => r.dst === '10.92.0.0/16')).toEqual({
        family: 4,
        dst: '10.92.0.0/16',
        gateway: '10.90.0.2',
        oifIndex: ipLink(a, x)!.ifindex,
        oifName: x,
        table: RT_TABLE.MAIN,
        metric: 20,
        scope: RT_SCOPE.UNIVERSE,
        protocol: RTPROT.BOOT,
        type: RTN.UNICAST,
        flags: 0,
        onlink: false,
      });
      expect(listed.find((r) => r.dst === '10.91.0.0/16')).toMatchObject({ scope: RT_SCOPE.LINK, oifName: x });
      expect(listed.find((r) => r.dst === '10.93.0.0/16')).toMatchObject({ onlink: true });
      expect(await nl.listRoutes({ family: 4, table: 100 })).toEqual([expect.objectContaining({ dst: '10.94.0.0/16', table: 100 })]);
      expect((await nl.listRoutes({ table: 'all' })).some((r) => r.table === RT_TABLE.LOCAL && r.type === RTN.LOCAL)).toBe(true);
    });

    test('IPv6: prefix route, gateway route and default routes written ::/0 and "default"', async () => {
      const [x] = await addressedPair();
      await nl.addRoute({ dst: '2001:db8:91::/64', ifName: x });
      await nl.addRoute({ dst: '2001:db8:92::/48', gateway: '2001:db8:90::2', metric: 30 });
      await nl.addRoute({ dst: '::/0', gateway: '2001:db8:90::fe', metric: 100 });
      await nl.addRoute({ dst: 'default', family: 6, gateway: 'fe80::1', ifName: x, metric: 200 });
      const seen = ipRoutes(a, 6);
      expect(seen).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '2001:db8:91::/64', dev: x }),
          expect.objectContaining({ dst: '2001:db8:92::/48', gateway: '2001:db8:90::2', metric: 30 }),
          expect.objectContaining({ dst: 'default', gateway: '2001:db8:90::fe', metric: 100 }),
          expect.objectContaining({ dst: 'default', gateway: 'fe80::1', dev: x, metric: 200 }),
        ]),
      );
      const listed = await nl.listRoutes({ family: 6 });
      expect(listed.map((r) => `${r.dst} ${r.metric}`).sort()).toEqual(seen.map((r) => `${r.dst} ${r.metric}`).sort());
      expect(listed.filter((r) => r.dst === 'default').map((r) => r.gateway).sort()).toEqual(['2001:db8:90::fe', 'fe80::1']);
    });

    test('replaceRoute creates, then replaces in place; deleteRoute removes and then reports false', async () => {
      const [x] = await addressedPair();
      await nl.replaceRoute({ dst: '10.95.0.0/16', gateway: '10.90.0.2' });
      await nl.replaceRoute({ dst: '10.95.0.0/16', gateway: '10.90.0.3' });
      expect(ipRoutes(a, 4).filter((r) => r.dst === '10.95.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.90.0.3' })]);
      await nl.replaceRoute({ dst: 'default', gateway: '2001:db8:90::2' });
      await nl.replaceRoute({ dst: 'default', gateway: '2001:db8:90::3' });
      expect(ipRoutes(a, 6).filter((r) => r.dst === 'default')).toEqual([expect.objectContaining({ gateway: '2001:db8:90::3' })]);

      expect(await nl.deleteRoute({ dst: '10.95.0.0/16' })).toBe(true);
      expect(await nl.deleteRoute({ dst: '::/0', gateway: '2001:db8:90::3', ifName: x })).toBe(true);
      expect(ipRoutes(a, 4).find((r) => r.dst === '10.95.0.0/16')).toBeUndefined();
      expect(ipRoutes(a, 6).find((r) => r.dst === 'default')).toBeUndefined();
      expect(await nl.deleteRoute({ dst: '10.95.0.0/16' })).toBe(false);
      expect(await nl.deleteRoute({ dst: 'default', family: 6 })).toBe(false);
    });

    test('errors: duplicate route EEXIST, unreachable gateway ENETUNREACH, missing device ENODEV', async () => {
      await addressedPair();
      await nl.addRoute({ dst: '10.96.0.0/16', gateway: '10.90.0.2' });
      expect(await failure(nl.addRoute({ dst: '10.96.0.0/16', gateway: '10.90.0.2' }))).toMatchObject({ errnoName: 'EEXIST' });
      const unreachable = await failure(nl.addRoute({ dst: '10.97.0.0/16', gateway: '10.200.0.1' }));
      expect(unreachable).toMatchObject({ kind: 'KernelFailure', errnoName: 'ENETUNREACH' });
      expect(await failure(nl.addRoute({ dst: '10.98.0.0/16', ifName: 'plx-missing' }))).toMatchObject({ errnoName: 'ENODEV' });
      expect(await failure(nl.addRoute({ dst: 'default' }))).toMatchObject({ errnoName: 'EINVAL' });
      expect(await failure(nl.addRoute({ dst: '10.99.0.0/16', gateway: '2001:db8::1' }))).toMatchObject({ errnoName: 'EINVAL' });
    });

    test('a dump larger than one datagram is read whole (multi-part NLM_F_DUMP)', async () => {
      const [x] = await addressedPair();
      for (let i = 0; i < 600; i++) await nl.addRoute({ dst: `10.${110 + (i >> 8)}.${i & 255}.0/24`, gateway: '10.90.0.2', ifName: x });
      const listed = (await nl.listRoutes({ family: 4 })).filter((r) => r.gateway === '10.90.0.2');
      expect(listed).toHaveLength(600);
      expect(ipRoutes(a, 4).filter((r) => r.gateway === '10.90.0.2')).toHaveLength(600);
    });

    test('reverse: routes made with ip read back through the API with their device names', async () => {
      const [x] = await addressedPair();
      ip(a, 'route', 'add', '10.100.0.0/16', 'via', '10.90.0.9', 'metric', '42', 'proto', 'static');
      ip(a, '-6', 'route', 'add', '2001:db8:100::/56', 'dev', x, 'metric', '7');
      ip(a, 'route', 'add', 'blackhole', '10.101.0.0/16');
      const listed = await nl.listRoutes();
      expect(listed).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ family: 4, dst: '10.100.0.0/16', gateway: '10.90.0.9', metric: 42, protocol: RTPROT.STATIC, oifName: x }),
          expect.objectContaining({ family: 6, dst: '2001:db8:100::/56', metric: 7, oifName: x }),
          expect.objectContaining({ family: 4, dst: '10.101.0.0/16', type: RTN.BLACKHOLE }),
        ]),
      );
    });
  });

  describe('neighbours', () => {
    test('permanent IPv4 and IPv6 entries: ip sees them, listNeighbours matches ip', async () => {
      const [x] = await upPair();
      await nl.addNeighbour({ ifName: x, address: '169.254.1.1', mac: 'ee:ee:ee:ee:ee:ee', permanent: true });
      const index = ipLink(a, x)!.ifindex;
      await nl.addNeighbour({ ifindex: index, address: 'fe80::1', mac: 'ee:ee:ee:ee:ee:01', permanent: true, router: true });
      expect(ipNeighs(a, x)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', state: ['PERMANENT'] }),
          expect.objectContaining({ dst: 'fe80::1', lladdr: 'ee:ee:ee:ee:ee:01', state: ['PERMANENT'], router: null }),
        ]),
      );
      const listed = await nl.listNeighbours({ ifName: x });
      expect(listed.filter((n) => n.permanent).map((n) => `${n.address} ${n.mac}`).sort()).toEqual(
        ipNeighs(a, x).filter((n) => n.state?.includes('PERMANENT')).map((n) => `${n.dst} ${n.lladdr}`).sort(),
      );
      expect(listed.find((n) => n.address === '169.254.1.1')).toEqual({
        ifindex: index,
        ifName: x,
        family: 4,
        address: '169.254.1.1',
        mac: 'ee:ee:ee:ee:ee:ee',
        state: NUD.PERMANENT,
        permanent: true,
        flags: 0,
      });
      expect(listed.find((n) => n.address === 'fe80::1')?.flags).toBe(NTF.ROUTER);
      expect((await nl.listNeighbours({ family: 6 })).every((n) => n.family === 6)).toBe(true);
    });

    test('replace changes the MAC; add of an existing entry is EEXIST; delete is true, then false', async () => {
      const [x] = await upPair();
      const entry = { ifName: x, address: '169.254.1.1', mac: 'ee:ee:ee:ee:ee:ee', permanent: true } as const;
      await nl.replaceNeighbour(entry);
      await nl.replaceNeighbour({ ...entry, mac: '02:00:00:00:00:aa' });
      expect(ipNeighs(a, x)).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: '02:00:00:00:00:aa', state: ['PERMANENT'] })]);
      expect(await failure(nl.addNeighbour(entry))).toMatchObject({ kind: 'KernelFailure', errnoName: 'EEXIST' });
      expect(await nl.deleteNeighbour({ ifName: x, address: '169.254.1.1' })).toBe(true);
      expect(ipNeighs(a, x)).toEqual([]);
      expect(await nl.deleteNeighbour({ ifName: x, address: '169.254.1.1' })).toBe(false);
      expect(await nl.deleteNeighbour({ ifName: 'plx-missing', address: '169.254.1.1' })).toBe(false);
      expect(await failure(nl.addNeighbour({ ...entry, ifName: 'plx-missing' }))).toMatchObject({ errnoName: 'ENODEV' });
    });

    test('reverse: entries made with ip read back through the API', async () => {
      const [x] = await upPair();
      ip(a, 'neigh', 'add', '10.84.0.9', 'lladdr', '02:00:00:00:84:09', 'dev', x, 'nud', 'permanent');
      ip(a, 'neigh', 'add', '2001:db8:84::9', 'lladdr', '02:00:00:00:84:0a', 'dev', x, 'nud', 'reachable');
      const listed = await nl.listNeighbours({ ifName: x });
      expect(listed).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ family: 4, address: '10.84.0.9', mac: '02:00:00:00:84:09', permanent: true, ifName: x }),
          expect.objectContaining({ family: 6, address: '2001:db8:84::9', mac: '02:00:00:00:84:0a', permanent: false, state: NUD.REACHABLE }),
        ]),
      );
    });
  });

  describe('bridge, macvlan, vxlan, master, altnames', () => {
    test('createBridge and setMaster: ip shows the bridge, the port on it, then released', async () => {
      const [x] = await upPair();
      const br = randomIfName('plxbr');
      await nl.createBridge(br, { mtu: 1400 });
      expect(ipLink(a, br)).toMatchObject({ mtu: 1400, linkinfo: { info_kind: 'bridge' } });
      await nl.setMaster(x, br);
      expect(ipLink(a, x)?.master).toBe(br);
      expect((await nl.getLink(x))?.masterIndex).toBe(ipLink(a, br)!.ifindex);
      await nl.setMaster(ipLink(a, x)!.ifindex, null);
      expect(ipLink(a, x)?.master).toBeUndefined();
      expect(await failure(nl.createBridge(br))).toMatchObject({ errnoName: 'EEXIST' });
      expect(await failure(nl.setMaster(x, 'plx-missing'))).toMatchObject({ errnoName: 'ENODEV' });
    });

    test('createMacvlan on a veth parent, here and straight into another netns', async () => {
      const [, y] = await upPair();
      const [mv, mvB] = [randomIfName('plxmv'), randomIfName('plxmv')];
      await nl.createMacvlan(mv, y, { mode: 'bridge', mtu: 1400 });
      expect(ipLink(a, mv)).toMatchObject({ link: y, mtu: 1400, linkinfo: { info_kind: 'macvlan', info_data: expect.objectContaining({ mode: 'bridge' }) } });
      await nl.createMacvlan(mvB, y, { mode: 'private', netnsPath: b.path, mac: '02:00:00:00:0b:01' });
      expect(ipLink(a, mvB)).toBeUndefined();
      expect(ipLink(b, mvB)).toMatchObject({
        address: '02:00:00:00:0b:01',
        linkinfo: { info_kind: 'macvlan', info_data: expect.objectContaining({ mode: 'private' }) },
      });
      expect((await nlB.getLink(mvB))?.kind).toBe('macvlan');
      expect(await failure(nl.createMacvlan(randomIfName('plxmv'), 'plx-missing', { mode: 'bridge' }))).toMatchObject({ errnoName: 'ENODEV' });
    });

    test('createVxlan: VNI, port, local address, learning off, underlay link as ip shows them', async () => {
      const [x] = await upPair();
      await nl.addAddress(x, '192.0.2.1/24');
      const vx = randomIfName('plxvx');
      await nl.createVxlan(vx, { vni: 4242, dstPort: 4789, localIp: '192.0.2.1', learning: false, parentRef: x, mtu: 1450 });
      expect(ipLink(a, vx)).toMatchObject({
        mtu: 1450,
        linkinfo: { info_kind: 'vxlan', info_data: expect.objectContaining({ id: 4242, port: 4789, local: '192.0.2.1', learning: false, link: x }) },
      });
      const vx6 = randomIfName('plxvx');
      await nl.createVxlan(vx6, { vni: 7, dstPort: 8472, localIp: '2001:db8::1' });
      expect(ipLink(a, vx6)?.linkinfo?.info_data).toEqual(expect.objectContaining({ id: 7, port: 8472, local6: '2001:db8::1', learning: true }));
      expect((await nl.getLink(vx))?.kind).toBe('vxlan');
    });

    test('removeAltName removes the altname ip sees; again it is false; addAltName is the reverse', async () => {
      const [x] = await upPair();
      ip(a, 'link', 'property', 'add', 'dev', x, 'altname', `${x}-old`);
      expect(ipLink(a, x)?.altnames).toEqual([`${x}-old`]);
      expect(await nl.removeAltName(x, `${x}-old`)).toBe(true);
      expect(ipLink(a, x)?.altnames).toBeUndefined();
      expect(await nl.removeAltName(x, `${x}-old`)).toBe(false);
      expect(await nl.removeAltName('plx-missing', 'plx-x')).toBe(false);

      await nl.addAltName(ipLink(a, x)!.ifindex, `${x}-new`);
      expect(ipLink(a, x)?.altnames).toEqual([`${x}-new`]);
      expect((await nl.getLink(`${x}-new`))?.name).toBe(x); // the kernel resolves an altname like a name
      expect(await failure(nl.addAltName(x, 'lo'))).toMatchObject({ errnoName: 'EEXIST' });
    });
  });

  describe('sysctl', () => {
    // New namespaces copy IPv4 conf/all from the host, so ip_forward starts as the host has it (on a Kubernetes
    // node: 1): flip whatever each namespace starts with, never assume 0.
    test('reads and writes a per-netns sysctl; ip netns exec sysctl agrees; the host is untouched', async () => {
      const key = 'net/ipv4/ip_forward';
      const host = await readSysctl(null, key);
      expect(host).toBe(run('sysctl', ['-n', 'net.ipv4.ip_forward']).trim());
      const start = { a: sysctlIn(a, key), b: sysctlIn(b, key) };
      expect(await readSysctl(a.path, key)).toBe(start.a);
      const flipped = start.a === '1' ? '0' : '1';
      await writeSysctl(a.path, key, Number(flipped));
      expect(sysctlIn(a, key)).toBe(flipped);
      expect(sysctlIn(b, key)).toBe(start.b);
      expect(await readSysctl(a.path, key)).toBe(flipped);
      await writeSysctl(a.path, key, start.a);
      expect(sysctlIn(a, key)).toBe(start.a);
      expect(await readSysctl(null, key)).toBe(host);
      expect(threadNetns()).toBe(HOST_NETNS);
    });

    test('per-interface keys and multi-value keys', async () => {
      const [x] = await upPair();
      await writeSysctl(a.path, `net/ipv4/conf/${x}/proxy_arp`, 1);
      expect(sysctlIn(a, `net/ipv4/conf/${x}/proxy_arp`)).toBe('1');
      await writeSysctl(a.path, `net/ipv6/conf/${x}/disable_ipv6`, 1);
      expect(await readSysctl(a.path, `net/ipv6/conf/${x}/disable_ipv6`)).toBe('1');
      await writeSysctl(a.path, 'net/ipv4/ping_group_range', '0\t2147483647');
      expect(sysctlIn(a, 'net/ipv4/ping_group_range').split(/\s+/)).toEqual(['0', '2147483647']);
    });

    test.each([
      ['a path escape', '../../etc/passwd', 'EINVAL'],
      ['a key outside net/', 'kernel/hostname', 'EINVAL'],
      ['a dotted key', 'net.ipv4.ip_forward', 'EINVAL'],
      ['a .. component', 'net/ipv4/../../../etc/passwd', 'EINVAL'],
      ['an empty key', '', 'EINVAL'],
      ['a missing key', 'net/ipv4/plexus_no_such_key', 'ENOENT'],
    ])('%s is %s', async (_name, key, errnoName) => {
      expect(await failure(readSysctl(a.path, key))).toMatchObject({ kind: 'KernelFailure', errnoName });
      expect(await failure(writeSysctl(a.path, key, 1))).toMatchObject({ kind: 'KernelFailure', errnoName });
    });

    test('a value the kernel refuses is EINVAL; a multi-line value never reaches it', async () => {
      const start = sysctlIn(a, 'net/ipv4/ip_forward');
      expect(await failure(writeSysctl(a.path, 'net/ipv4/ip_forward', 'yes'))).toMatchObject({ errnoName: 'EINVAL' });
      expect(await failure(writeSysctl(a.path, 'net/ipv4/ip_forward', '1\n0'))).toMatchObject({ errnoName: 'EINVAL' });
      expect(await failure(readSysctl('/run/netns/plx-k-missing', 'net/ipv4/ip_forward'))).toMatchObject({ errnoName: 'ENOENT' });
      expect(sysctlIn(a, 'net/ipv4/ip_forward')).toBe(start);
    });
  });
});
