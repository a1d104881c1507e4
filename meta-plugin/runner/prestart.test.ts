/**
 * D-13 with real processes: each next plugin is started while the current one works, but gets its config (and so
 * acts) only after the current one has finished (S29, S34), and the first only once the sandbox record is on
 * disk (D-3). Each plugin is a shell script that logs when it starts, when it has its config, and when it is done.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../delegates/registry';
import { silentLog } from '../../test/helpers/fake-registry';
import type { CniRequest } from '../../cni/request';
import type { ContainerId, IfName, NetnsPath } from '../../cni/ids';
import type { Plan, PlannedAttachment } from '../planner/types';
import { RecordStore } from './sandbox-records';
import { Runner } from './runner';

let dir: string;
let bin: string;
let log: string;
let stateDir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plexus-prestart-'));
  bin = join(dir, 'bin');
  stateDir = join(dir, 'state');
  log = join(dir, 'events');
  mkdirSync(bin);
  writeFileSync(log, '');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const RECORD = () => join(stateDir, 'records', 'c1@eth0.json');

/**
 * A plugin that logs `start`, `config` (with whether the record exists), `done`. `failsAfter` makes its ADD fail
 * once that plugin has logged its start (so the failure surely finds it prestarted).
 */
function plugin(type: string, failsAfter?: string): void {
  const now = 'date +%s%N';
  writeFileSync(
    join(bin, type),
    `#!/bin/sh
echo "start ${type} $(${now}) $$ $CNI_COMMAND" >> "${log}"
cat > /dev/null
if [ -f "${RECORD()}" ]; then rec=record; else rec=norecord; fi
echo "config ${type} $(${now}) $rec $CNI_COMMAND" >> "${log}"
if [ "$CNI_COMMAND" = DEL ]; then sleep 0.5; echo "done-del ${type} $(${now})" >> "${log}"; exit 0; fi
sleep 0.5
${failsAfter ? `for i in $(seq 200); do grep -q "^start ${failsAfter} " "${log}" && break; sleep 0.05; done; echo '{"cniVersion":"1.0.0","code":11,"msg":"${type} broke"}'; exit 1` : ''}
echo "done ${type} $(${now})" >> "${log}"
echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'$CNI_IFNAME'","sandbox":"'$CNI_NETNS'"}],"ips":[]}'
`,
    { mode: 0o755 },
  );
}

interface Event {
  what: string;
  type: string;
  at: bigint;
  extra: string[];
}
const events = (): Event[] =>
  readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [what, type, at, ...extra] = l.split(' ');
      return { what: what!, type: type!, at: BigInt(at!), extra };
    });

/** When `type` logged `what` for `command` (start and config lines carry the command). */
const at = (what: string, type: string, command = 'ADD'): bigint => {
  const e = events().find((x) => x.what === what && x.type === type && (what === 'start' ? x.extra[1] === command : what === 'config' ? x.extra[1] === command : true));
  if (!e) throw new Error(`no "${what} ${type}" event for ${command}`);
  return e.at;
};

/** The real store, its writes slowed down so that a plugin acting before the first has landed would see no record. */
class SlowStore extends RecordStore {
  /** When the first put ended (ns since the epoch, as the plugins' `date +%s%N`). */
  firstPutDone: bigint | undefined;

  override put(rec: Parameters<RecordStore['put']>[0]): void {
    const until = Date.now() + 300;
    while (Date.now() < until); // put is synchronous: stall it as a slow disk would
    super.put(rec);
    this.firstPutDone ??= BigInt(Date.now()) * 1_000_000n;
  }
}
let store: SlowStore;

function runner(prestartDelegates: boolean): Runner {
  return new Runner({
    records: (store = new SlowStore(stateDir)),
    registry: new Registry(),
    binDirs: [bin],
    delegateTimeoutMs: 10_000,
    prestartDelegates,
    routes: { setDefaultRoute: async () => undefined },
    linkExists: async () => true,
    deviceInfoDir: join(dir, 'devinfo'),
  });
}

function attachment(type: string, index: number): PlannedAttachment {
  const att: PlannedAttachment = {
    index,
    origin: index === 0 ? 'cluster' : 'annotation',
    statusName: index === 0 ? type : `team/${type}`,
    isDefault: index === 0,
    ifName: (index === 0 ? 'eth0' : `net${index}`) as IfName,
    conf: { cniVersion: '1.0.0', name: type, single: true, plugins: [{ type }] },
    runtimeConfig: {},
  };
  if (index > 0) att.nad = { namespace: 'team', name: type };
  return att;
}
const plan = (...types: string[]): Plan => ({ attachments: types.map((t, i) => attachment(t, i)), warnings: [] });
const request: CniRequest = {
  command: 'ADD',
  containerId: 'c1' as ContainerId,
  ifName: 'eth0' as IfName,
  netns: '/var/run/netns/pod-1' as NetnsPath,
  argsRaw: 'K8S_POD_NAMESPACE=team;K8S_POD_NAME=web-0',
  args: {},
  path: [],
  config: {},
  cniVersion: '1.0.0',
  podRef: { namespace: 'team', name: 'web-0' },
};

test('each next plugin is started during the current one and acts after it; the first acts once the record is on disk', async () => {
  for (const t of ['cluster', 'a', 'b']) plugin(t);
  await runner(true).add(request, plan('cluster', 'a', 'b'), silentLog);
  expect(events().find((e) => e.what === 'config' && e.type === 'cluster')!.extra[0]).toBe('record');
  expect(at('start', 'cluster')).toBeLessThan(store.firstPutDone!); // it loaded while the record was written
  for (const [prev, next] of [['cluster', 'a'], ['a', 'b']] as const) {
    expect(at('start', next)).toBeLessThan(at('done', prev)); // prestarted
    expect(at('config', next)).toBeGreaterThan(at('done', prev)); // S34: one attachment operation at a time
  }
});

test('off (prestartDelegates: false): each plugin starts after the previous one is done', async () => {
  for (const t of ['cluster', 'a', 'b']) plugin(t);
  await runner(false).add(request, plan('cluster', 'a', 'b'), silentLog);
  expect(at('start', 'a')).toBeGreaterThan(at('done', 'cluster'));
  expect(at('start', 'b')).toBeGreaterThan(at('done', 'a'));
});

test('S32: when a network fails, the next one, already started, is killed without ever acting', async () => {
  plugin('cluster');
  plugin('a', 'b');
  plugin('b');
  await expect(runner(true).add(request, plan('cluster', 'a', 'b'), silentLog)).rejects.toMatchObject({ cniCode: 11 });
  const b = events().filter((e) => e.type === 'b');
  expect(b.map((e) => e.what)).toEqual(['start']); // it loaded, and was never handed a config
  const pid = Number(b[0]!.extra[0]);
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  // The rollback's DELs went to the two that were handed an ADD, and the record is gone.
  expect(events().filter((e) => e.what === 'config' && e.extra[1] === 'DEL').map((e) => e.type).sort()).toEqual(['a', 'cluster']);
  expect(existsSync(RECORD())).toBe(false);
});

test('within a config list too: the chained plugin loads while the first works, and gets its prevResult after', async () => {
  for (const t of ['cluster', 'chained', 'a']) plugin(t);
  const p = plan('cluster', 'a');
  p.attachments[0]!.conf = { ...p.attachments[0]!.conf, single: false, plugins: [{ type: 'cluster' }, { type: 'chained' }] };
  await runner(true).add(request, p, silentLog);
  for (const [prev, next] of [['cluster', 'chained'], ['chained', 'a']] as const) {
    expect(at('start', next)).toBeLessThan(at('done', prev));
    expect(at('config', next)).toBeGreaterThan(at('done', prev));
  }
});

test('DEL too: each next network (in reverse) loads while the current one is deleted, and acts after it', async () => {
  for (const t of ['cluster', 'a', 'b']) plugin(t);
  const r = runner(true);
  const { record } = await r.add(request, plan('cluster', 'a', 'b'), silentLog);
  await r.delRecord(record, request.netns!, [], silentLog);
  for (const [prev, next] of [['b', 'a'], ['a', 'cluster']] as const) {
    expect(at('start', next, 'DEL')).toBeLessThan(at('done-del', prev));
    expect(at('config', next, 'DEL')).toBeGreaterThan(at('done-del', prev));
  }
  expect(existsSync(RECORD())).toBe(false);
});
