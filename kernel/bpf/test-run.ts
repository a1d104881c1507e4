/**
 * BPF_PROG_TEST_RUN: runs a loaded program on a packet built in memory, without any link or traffic (STYLE 15:
 * build a packet, seed maps, run, check). For a tc program the packet starts with its Ethernet header.
 */
import { invalidArgument } from '../errno';
import { checkInt, sizeOf, type TestRunOptsStruct } from './libbpf';
import type { BpfProgram } from './object';

export interface TestRunOptions {
  /** Run the program this many times (the duration is the average); default 1. */
  repeat?: number;
  /** Room for a packet the program grows (encapsulation); default 256 bytes more than the input. */
  headroom?: number;
}

export interface TestRunResult {
  /** The program's return value: for tc, a TC_ACT_* verdict. */
  retval: number;
  /** The packet as the program left it. */
  packet: Buffer;
  /** Average run time in nanoseconds, as the kernel measured it. */
  durationNs: number;
}

/** Ethernet header (14) is the least a tc program is run on; the kernel refuses more than a page or so. */
const MIN_PACKET = 14;
const MAX_PACKET = 65535;

export function testRun(prog: BpfProgram | number, packet: Buffer, opts: TestRunOptions = {}): TestRunResult {
  const fd = typeof prog === 'number' ? prog : prog.fd;
  const what = `test-run ${typeof prog === 'number' ? `program fd ${fd}` : `program ${prog.name}`}`;
  const repeat = opts.repeat ?? 1;
  const headroom = opts.headroom ?? 256;
  if (!Number.isInteger(fd) || fd < 0) throw invalidArgument(what, 'invalid program fd');
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 0x7fffffff) throw invalidArgument(what, `invalid repeat ${repeat}`);
  if (!Number.isInteger(headroom) || headroom < 0 || headroom > MAX_PACKET) throw invalidArgument(what, `invalid headroom ${headroom}`);
  if (packet.length < MIN_PACKET || packet.length > MAX_PACKET) {
    throw invalidArgument(what, `a packet of ${packet.length} bytes (${MIN_PACKET}-${MAX_PACKET})`);
  }
  const out = Buffer.alloc(packet.length + headroom);
  const o: TestRunOptsStruct = {
    sz: sizeOf('struct bpf_test_run_opts'),
    data_in: packet,
    data_out: out,
    data_size_in: packet.length,
    data_size_out: out.length,
    ctx_in: null,
    ctx_out: null,
    ctx_size_in: 0,
    ctx_size_out: 0,
    retval: 0,
    repeat,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  checkInt(what, (l) => l.bpf_prog_test_run_opts(fd, o));
  // The kernel writes the packet into `out` through the pointer and reports its length in data_size_out.
  return { retval: o.retval | 0, packet: Buffer.from(out.subarray(0, Math.min(o.data_size_out, out.length))), durationNs: o.duration };
}
