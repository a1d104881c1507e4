/**
 * Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through libbpf's ring_buffer: the producer (a program)
 * never waits for us, and we never block: `consume()` takes whatever records are there, now, and returns.
 * The caller polls (a timer); each record is copied out of the shared pages before the callback sees it, since
 * libbpf hands the space back to the producer as soon as the callback returns.
 *
 *   const rb = new RingBufferReader(obj.map('events'), (record) => ...);
 *   setInterval(() => rb.consume(), 100);  ...  rb.close();
 */
import { ERRNO, KernelError } from '../errno';
import { BPF_MAP_TYPE } from './constants';
import { checkInt, checkPointer, libbpf, type Pointer } from './libbpf';
import type { BpfMap } from './map';

export class RingBufferReader {
  private rb: Pointer | null;
  private readonly callback: unknown;
  private failure: unknown;

  /** `map` must stay open while this reader is (libbpf keeps its own mapping, not the fd's lifetime). */
  constructor(map: BpfMap<unknown, unknown>, onRecord: (record: Buffer) => void) {
    const what = `read ring buffer ${map.info.name}`;
    if (map.info.type !== BPF_MAP_TYPE.RINGBUF) throw new KernelError(what, ERRNO.EINVAL, { extack: 'the map is no ring buffer' });
    const l = libbpf();
    this.callback = l.koffi.register((_ctx: unknown, data: unknown, size: number | bigint): number => {
      try {
        onRecord(Buffer.from(l.koffi.view(data, Number(size)).slice(0)));
      } catch (err) {
        this.failure ??= err; // thrown from consume(), after libbpf is out of the way
      }
      return 0;
    }, l.ringBufferSampleFn);
    try {
      this.rb = checkPointer(what, (lib) => lib.ring_buffer__new(map.fd, this.callback, null, null));
    } catch (err) {
      l.koffi.unregister(this.callback);
      throw err;
    }
  }

  /** Hands every record waiting now to the callback; returns how many. Never blocks. */
  consume(): number {
    const rb = this.rb;
    if (rb === null) throw new KernelError('consume a closed ring buffer', ERRNO.EBADF);
    const n = checkInt('consume ring buffer', (l) => l.ring_buffer__consume(rb));
    const failure = this.failure;
    this.failure = undefined;
    if (failure !== undefined) throw failure;
    return n;
  }

  close(): void {
    const rb = this.rb;
    if (rb === null) return;
    this.rb = null;
    const l = libbpf();
    l.ring_buffer__free(rb);
    l.koffi.unregister(this.callback);
  }
}
