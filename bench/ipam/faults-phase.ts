/**
 * (c) No address is ever handed out twice, over `total` allocations with faults injected:
 * - three nodes share one LocalStore directory (the shared store, as on one machine with several
 *   processes); node `a` runs in a child process with its book in its own LocalStore and is SIGKILLed every
 *   `crashEvery` allocations with requests in flight, then restarted (recovery); the runtime DELs the ADDs
 *   that failed and retries some live ADDs, which must get the same addresses back;
 * - node `c` leaves for good half-way (its registration ends; its pods went with it) and node `d` joins:
 *   c's blocks are reclaimed, its addresses quarantined, then freed by GC after the grace period;
 * - once a node holds KEEP pods, every further ADD there is followed by a DEL of its oldest pod; GC runs
 *   every `gcEvery` allocations on some node with the attachments the runtime knows there;
 * - cooldown 0 and a /22 pool (16 blocks), so freed addresses are handed out again soon.
 * Every address a caller is told is checked against the addresses live callers hold: a second live holder
 * is a duplicate. At the end the books must match what callers hold, and be empty after everything is DELeted.
 * The GC grace period (5 s) is longer than node a's restart, as in production (10 min vs seconds).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { LocalStore } from '../../ipam/stores/local-store';
import { MemoryStore } from '../../ipam/stores/memory-store';
import { Ipam, type IpamOptions } from '../../ipam/engine/ipam';
import { say } from './drive';

const POOL = { name: 'faults', cidrs: ['10.200.0.0/22'] };
/** Pods per node: 3 x 100 of 1,022 addresses, leaving room for reserves, quarantined and in-flight ones. */
const KEEP = 100;
const TUNING: Partial<IpamOptions> = { syncIntervalMs: 0, cooldownMs: 0, gcGraceMs: 5000, reserveIdleMs: 200 };
export const FAULTS_NODE_FLAG = '--ipam-faults-node';

export interface FaultsResult {
  allocations: number;
  failedAllocations: number;
  /** Why ADDs failed, by message with numbers stripped: a killed node's in-flight requests, mostly. */
  failureKinds: Record<string, number>;
  releases: number;
  crashes: number;
  nodeLosses: number;
  gcRuns: number;
  gcReleased: number;
  retriedAdds: number;
  retriedAddsChanged: number;
  duplicates: number;
  duplicateExamples: string[];
  /** Addresses callers hold that no book lists, or book entries no caller holds, before the cleanup. */
  unaccounted: number;
  /** Addresses still in some book, or quarantined/borrowed in the shared store, after everything was DELeted (must be 0). */
  leakedAfterCleanup: number;
  seconds: number;
  complete: boolean;
}

type Request = { id: number; op: 'allocate' | 'release'; cid: string } | { id: number; op: 'gc'; valid: string[] } | { id: number; op: 'pods' };
type RequestBody = Request extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** What the bench asks of a node, in process or in the child. */
interface NodeApi {
  allocate(cid: string): Promise<string[]>;
  release(cid: string): Promise<void>;
  gc(valid: string[]): Promise<number>;
  pods(): Promise<{ ip: string; cid: string }[]>;
}

const requestOf = (cid: string) => ({ pod: { namespace: 'bench', name: cid }, containerId: cid, ifName: 'eth0', network: 'faults', pool: 'faults' });

function apiOf(ipam: Ipam): NodeApi {
  return {
    allocate: async (cid) => (await ipam.allocate(requestOf(cid))).addresses.map((a) => a.ip),
    release: async (cid) => void (await ipam.release(cid)),
    gc: async (valid) => {
      const r = await ipam.gc({ attachments: valid.map((containerId) => ({ containerId, ifName: 'eth0' })) });
      return r.released.filter((c) => c.kind === 'attachment' || c.kind === 'quarantined').length;
    },
    pods: async () => ipam.pods().flatMap((p) => p.addresses.map((a) => ({ ip: a.ip, cid: a.containerId }))),
  };
}

/** The child process serving node `a`: LocalStore shared and node stores, requests over IPC. */
export async function runFaultsNodeChild([sharedDir, nodeDir, name]: string[]): Promise<void> {
  const shared = await LocalStore.open(sharedDir as string);
  const nodeStore = await LocalStore.open(nodeDir as string);
  const api = apiOf(await Ipam.open({ node: name as string, shared, nodeStore, pools: [POOL], ...TUNING }));
  process.on('message', (m: Request) => {
    const run = m.op === 'allocate' ? api.allocate(m.cid) : m.op === 'release' ? api.release(m.cid) : m.op === 'gc' ? api.gc(m.valid) : api.pods();
    run.then(
      (value) => process.send?.({ id: m.id, ok: true, value } satisfies Reply),
      (e: unknown) => process.send?.({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) } satisfies Reply),
    );
  });
  process.send?.({ ready: true });
}

/** Node `a` in a child process, which the bench SIGKILLs; its pending requests then fail, as a runtime sees it. */
class ChildNode implements NodeApi {
  private child!: ChildProcess;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly script: string, private readonly args: string[]) {}

  start(): Promise<void> {
    this.child = spawn(process.execPath, [this.script, FAULTS_NODE_FLAG, ...this.args], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const child = this.child;
    child.on('message', (m: Reply | { ready: true }) => {
      if ('ready' in m) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
    });
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('node a died'));
      this.pending.clear();
    });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code, sig) => reject(new Error(`node a exited during start (${code ?? sig})`)));
    });
  }

  kill(): Promise<void> {
    const exited = new Promise<void>((r) => (this.child.exitCode !== null || this.child.signalCode !== null ? r() : this.child.once('exit', () => r())));
    this.child.kill('SIGKILL');
    return exited;
  }

  private call<T>(req: RequestBody): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (!this.child.send({ ...req, id })) reject(new Error('node a is not reachable'));
    });
  }

  allocate = (cid: string): Promise<string[]> => this.call({ op: 'allocate', cid });
  release = (cid: string): Promise<void> => this.call({ op: 'release', cid });
  gc = (valid: string[]): Promise<number> => this.call({ op: 'gc', valid });
  pods = (): Promise<{ ip: string; cid: string }[]> => this.call({ op: 'pods' });
}

interface SimNode {
  name: string;
  api: NodeApi;
  child?: ChildNode;
  ipam?: Ipam;
  up: boolean;
  inflight: Set<string>;
  releasing: number;
  /** Live attachments (container IDs) on this node, oldest first. */
  live: Set<string>;
  /** ADDs that failed (the runtime DELs them) and DELs that failed (the runtime retries them). */
  toDelete: string[];
}

export async function runFaultsPhase(dir: string, opts: { total: number; deadlineMs: number; crashEvery: number; gcEvery: number; workers: number; script: string }): Promise<FaultsResult> {
  const t0 = performance.now();
  const sharedDir = join(dir, 'shared');
  const shared = await LocalStore.open(sharedDir);
  const inProcess = async (name: string): Promise<SimNode> => {
    const ipam = await Ipam.open({ node: name, shared, nodeStore: new MemoryStore(), pools: [POOL], ...TUNING });
    return { name, api: apiOf(ipam), ipam, up: true, inflight: new Set(), releasing: 0, live: new Set(), toDelete: [] };
  };
  const child = new ChildNode(opts.script, [sharedDir, join(dir, 'node-a'), 'a']);
  await child.start();
  const nodes: SimNode[] = [
    { name: 'a', api: child, child, up: true, inflight: new Set(), releasing: 0, live: new Set(), toDelete: [] },
    await inProcess('b'),
    await inProcess('c'),
  ];
  const res: FaultsResult = {
    allocations: 0, failedAllocations: 0, failureKinds: {}, releases: 0, crashes: 0, nodeLosses: 0, gcRuns: 0, gcReleased: 0,
    retriedAdds: 0, retriedAddsChanged: 0, duplicates: 0, duplicateExamples: [], unaccounted: 0, leakedAfterCleanup: 0, seconds: 0, complete: false,
  };
  /** ip -> the attachment a live caller holds it for, and the reverse. */
  const holderOf = new Map<string, string>();
  const ipsOf = new Map<string, string[]>();
  let seq = 0;
  let busy: Promise<void> | null = null; // one fault at a time
  const stopAt = performance.now() + opts.deadlineMs;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const record = (cid: string, ips: string[]): void => {
    for (const ip of ips) {
      const other = holderOf.get(ip);
      if (other !== undefined && other !== cid) {
        res.duplicates++;
        if (res.duplicateExamples.length < 10) res.duplicateExamples.push(`${ip}: ${other} and ${cid}`);
      }
      holderOf.set(ip, cid);
    }
    ipsOf.set(cid, ips);
  };
  /** The runtime forgets an attachment before it sends DEL: the address may be handed out again at once. */
  const forget = (cid: string): void => {
    for (const ip of ipsOf.get(cid) ?? []) if (holderOf.get(ip) === cid) holderOf.delete(ip);
    ipsOf.delete(cid);
  };

  const release = async (n: SimNode, cid: string): Promise<void> => {
    n.live.delete(cid);
    forget(cid);
    n.releasing++;
    try {
      await n.api.release(cid);
      res.releases++;
    } catch {
      n.toDelete.push(cid);
    } finally {
      n.releasing--;
    }
  };

  const crash = async (n: SimNode): Promise<void> => {
    n.up = false;
    await n.child?.kill(); // SIGKILL with requests in flight: they fail, as the runtime would see it
    while (n.inflight.size > 0 || n.releasing > 0) await sleep(1);
    await n.child?.start(); // restart: recovery reconciles the node's book with the shared store
    for (const cid of n.toDelete.splice(0)) await n.api.release(cid);
    for (const cid of [...n.live].slice(-20)) {
      const again = await n.api.allocate(cid);
      res.retriedAdds++;
      if (again.join() !== (ipsOf.get(cid) ?? []).join()) res.retriedAddsChanged++;
    }
    n.up = true;
    res.crashes++;
  };

  const leave = async (n: SimNode): Promise<void> => {
    n.up = false;
    while (n.inflight.size > 0 || n.releasing > 0) await sleep(1);
    await n.ipam?.close({ leave: true });
    for (const cid of n.live) forget(cid); // its pods went with it
    nodes.splice(nodes.indexOf(n), 1);
    nodes.push(await inProcess('d'));
    res.nodeLosses++;
  };

  const collect = async (): Promise<void> => {
    const up = nodes.filter((x) => x.up);
    const n = up[res.gcRuns % Math.max(1, up.length)];
    if (!n) return;
    // What the runtime knows is there, taken right before the call: live and in-flight attachments.
    res.gcReleased += await n.api.gc([...n.live, ...n.inflight]);
    res.gcRuns++;
  };

  const fault = (fn: () => Promise<void>): void => {
    if (busy) return;
    busy = fn().finally(() => (busy = null));
  };

  const worker = async (w: number): Promise<void> => {
    while (seq < opts.total && performance.now() < stopAt) {
      const up = nodes.filter((x) => x.up);
      const n = up[w % Math.max(1, up.length)];
      if (!n) {
        await sleep(1);
        continue;
      }
      const i = seq++;
      const cid = `f${i}`;
      n.inflight.add(cid);
      try {
        record(cid, await n.api.allocate(cid));
        n.live.add(cid);
        res.allocations++;
      } catch (e) {
        res.failedAllocations++;
        const why = (e instanceof Error ? e.message : String(e)).replace(/^failed to allocate addresses for \S+ \([^)]*\): /, '').replace(/\d+(\.\d+)*/g, 'N').slice(0, 120);
        res.failureKinds[why] = (res.failureKinds[why] ?? 0) + 1;
        n.toDelete.push(cid);
      } finally {
        n.inflight.delete(cid);
      }
      if (n.up && n.live.size > KEEP) await release(n, [...n.live][0] as string);
      if (i >= opts.total / 2 && res.nodeLosses === 0) fault(() => leave(nodes.find((x) => x.name === 'c') as SimNode));
      else if (i > 0 && i % opts.crashEvery === 0) fault(() => crash(nodes[0] as SimNode));
      else if (i > 0 && i % opts.gcEvery === 0) fault(collect);
      if (i > 0 && i % 20000 === 0) say(`faults: ${i} allocations started, ${res.crashes} crashes, ${res.duplicates} duplicates so far`);
    }
  };

  try {
    await Promise.all(Array.from({ length: opts.workers }, (_, w) => worker(w)));
    while (busy) await busy;
    res.complete = res.allocations + res.failedAllocations >= opts.total;

    for (const n of nodes) for (const cid of n.toDelete.splice(0)) await n.api.release(cid);
    // Wait out the grace period once, so GC frees what c left quarantined (and re-checks first).
    await sleep((TUNING.gcGraceMs ?? 0) + 100);
    for (const n of nodes) res.gcReleased += await n.api.gc([...n.live]);
    res.gcRuns += nodes.length;
    // Accounting: every address a caller holds is in its node's book, and every book entry has a holder.
    const booked = new Map<string, string>();
    for (const n of nodes) for (const p of await n.api.pods()) booked.set(p.ip, p.cid);
    for (const [ip, cid] of holderOf) if (booked.get(ip) !== cid) res.unaccounted++;
    for (const [ip, cid] of booked) if (holderOf.get(ip) !== cid) res.unaccounted++;

    // Cleanup: the runtime DELs everything; nothing may stay held.
    for (const n of nodes) {
      for (const cid of [...n.live]) await release(n, cid);
      res.leakedAfterCleanup += (await n.api.pods()).length;
    }
    // Nothing may stay quarantined or borrowed in the shared store either.
    const viewer = nodes.find((n) => n.ipam)?.ipam;
    for (const b of (await viewer?.blocks()) ?? []) res.leakedAfterCleanup += b.foreign.length;
  } finally {
    for (const n of nodes) await n.ipam?.close();
    await child.kill();
    await shared.close();
  }
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}
