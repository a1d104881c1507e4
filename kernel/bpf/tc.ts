/**
 * tc (clsact) hooks: attach a BPF program as a direct-action cls_bpf filter on the ingress or egress of a link
 * in any netns, query it and detach it.
 *
 *   const hook = new TcHook(hostVethIndex, 'ingress');          // null netns: the caller's
 *   hook.create();                                               // the clsact qdisc, if missing
 *   const filter = hook.attach(obj.program('from_pod'));        // handle 1, priority 1 by default
 *   hook.query(filter)?.progId; hook.detach(filter);
 *
 * libbpf's tc functions talk rtnetlink over a socket they open in the calling thread's netns, so every call
 * runs inside withNetns (STYLE 13): synchronous, switched back in `finally`. The ifindex is the link's index
 * in that netns.
 */
import { hasErrno, invalidArgument } from '../errno';
import { withNetns } from '../netns';
import { BPF_TC, BPF_TC_F } from './constants';
import { checkInt, type Libbpf, sizeOf, type TcHookStruct, type TcOptsStruct } from './libbpf';
import type { BpfProgram } from './object';

export type TcAttachPoint = 'ingress' | 'egress';

/** Where a filter sits on its hook, as `tc filter show` prints it ("pref 1 ... handle 0x1"). */
export interface TcFilterRef {
  /** 1-0xffffffff; default 1. */
  handle?: number;
  /** 1-0xffff ("pref"); default 1. */
  priority?: number;
}

export interface TcFilter {
  handle: number;
  priority: number;
  /** The attached program's id (what `bpftool prog show id N` shows). */
  progId: number;
}

export interface TcAttachOptions extends TcFilterRef {
  /** Replace the program at (handle, priority) if one is there; without it that is EEXIST. */
  replace?: boolean;
}

export class TcHook {
  readonly point: TcAttachPoint;

  /** `netnsPath` null: the calling thread's netns. */
  constructor(
    readonly ifindex: number,
    point: TcAttachPoint,
    readonly netnsPath: string | null = null,
  ) {
    const what = `use tc hook ${point} of link #${ifindex}`;
    if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fffffff) throw invalidArgument(what, 'invalid ifindex');
    if (point !== 'ingress' && point !== 'egress') throw invalidArgument(what, 'point must be ingress or egress');
    this.point = point;
  }

  /** Adds the clsact qdisc that both hooks hang off. False when it was there already. */
  create(): boolean {
    try {
      this.call('create clsact qdisc', (l, hook) => l.bpf_tc_hook_create(hook));
      return true;
    } catch (err) {
      if (hasErrno(err, 'EEXIST')) return false;
      throw err;
    }
  }

  /** Attaches `prog` (a loaded program or a program fd); creates the clsact qdisc first if needed. */
  attach(prog: BpfProgram | number, opts: TcAttachOptions = {}): TcFilter {
    const fd = typeof prog === 'number' ? prog : prog.fd;
    const what = `attach ${typeof prog === 'number' ? `program fd ${fd}` : `program ${prog.name}`}`;
    if (!Number.isInteger(fd) || fd < 0) throw invalidArgument(this.describe(what), 'invalid program fd');
    this.create();
    const o = this.opts(what, opts);
    o.prog_fd = fd;
    o.flags = opts.replace ? BPF_TC_F.REPLACE : 0;
    this.call(what, (l, hook) => l.bpf_tc_attach(hook, o));
    return { handle: o.handle, priority: o.priority, progId: o.prog_id };
  }

  /** The filter at (handle, priority), or undefined when there is none (or no clsact qdisc, or no link). */
  query(ref: TcFilterRef = {}): TcFilter | undefined {
    const what = 'query filter';
    const o = this.opts(what, ref);
    try {
      this.call(what, (l, hook) => l.bpf_tc_query(hook, o));
    } catch (err) {
      if (hasErrno(err, 'ENOENT', 'EINVAL', 'ENODEV')) return undefined;
      throw err;
    }
    return { handle: o.handle, priority: o.priority, progId: o.prog_id };
  }

  /** Removes the filter at (handle, priority). False when it was not there. */
  detach(ref: TcFilterRef = {}): boolean {
    const what = 'detach filter';
    const o = this.opts(what, ref);
    try {
      this.call(what, (l, hook) => l.bpf_tc_detach(hook, o));
      return true;
    } catch (err) {
      // No such filter: ENOENT; no clsact qdisc at all: EINVAL; the link is gone: ENODEV.
      if (hasErrno(err, 'ENOENT', 'EINVAL', 'ENODEV')) return false;
      throw err;
    }
  }

  /**
   * Removes the link's clsact qdisc with every filter on both hooks (what `tc qdisc del dev X clsact` does).
   * False when there was none.
   */
  static destroyClsact(ifindex: number, netnsPath: string | null = null): boolean {
    const both = new TcHook(ifindex, 'ingress', netnsPath);
    try {
      both.call('destroy clsact qdisc', (l, hook) => l.bpf_tc_hook_destroy({ ...hook, attach_point: BPF_TC.INGRESS | BPF_TC.EGRESS }));
      return true;
    } catch (err) {
      if (hasErrno(err, 'ENOENT', 'EINVAL', 'ENODEV')) return false;
      throw err;
    }
  }

  private describe(what: string): string {
    return `${what} on tc ${this.point} of link #${this.ifindex}${this.netnsPath === null ? '' : ` in ${this.netnsPath}`}`;
  }

  private opts(what: string, ref: TcFilterRef): TcOptsStruct {
    const handle = ref.handle ?? 1;
    const priority = ref.priority ?? 1;
    if (!Number.isInteger(handle) || handle <= 0 || handle > 0xffffffff) throw invalidArgument(this.describe(what), 'invalid handle');
    if (!Number.isInteger(priority) || priority <= 0 || priority > 0xffff) throw invalidArgument(this.describe(what), 'invalid priority');
    return { sz: sizeOf('struct bpf_tc_opts'), prog_fd: 0, flags: 0, prog_id: 0, handle, priority };
  }

  /** Runs one libbpf tc call inside the hook's netns. */
  private call(what: string, step: (l: Libbpf, hook: TcHookStruct) => number): void {
    const hook: TcHookStruct = {
      sz: sizeOf('struct bpf_tc_hook'),
      ifindex: this.ifindex,
      attach_point: this.point === 'ingress' ? BPF_TC.INGRESS : BPF_TC.EGRESS,
      parent: 0,
    };
    checkInt(this.describe(what), (l) => withNetns(this.netnsPath, () => step(l, hook)));
  }
}
