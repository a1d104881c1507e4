/**
 * Reads a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) from JS, the way libbpf's ring_buffer__consume does, over the
 * map's own pages mapped into this process: no callback from C per record (a koffi callback and its copy cost
 * about 3 µs a record; reading the mapped pages costs a few hundred nanoseconds), and batches of records between
 * two fences.
 *
 *   const rb = new RingBufferReader(obj.map('events'), (record) => ...);
 *   setInterval(() => rb.consume(), 100);
 *
 * The kernel's layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (this reader writes it),
 * page 1 the producer position, and the data pages follow, mapped twice in a row so that a record that wraps
 * around the end reads as one piece. Each record is an 8-byte header (its length, with a busy bit while the
 * program is writing it and a discard bit, then the page offset) and its bytes, padded to 8.
 */
import { ERRNO, KernelError } from '../errno';
import { Fence, mapShared, pageSize, type SharedMapping } from '../libc';
import { BPF_MAP_TYPE } from './constants';
import type { BpfMap } from './map';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HEADER = 8;

export class RingBufferReader {
  private consumer: SharedMapping | null;
  private readonly producer: SharedMapping;
  /** consumer_pos and producer_pos, each a u64 at the start of its page. */
  private readonly consumerPos: BigUint64Array;
  private readonly producerPos: BigUint64Array;
  /** The data pages, twice: offset 0 is the ring's first byte. */
  private readonly data: Buffer;
  private readonly size: number;
  private readonly fence = new Fence();

  /**
   * `onRecord` gets each record as a view of the ring's memory, valid only during the call (the producer
   * reuses the space once the reader moves on): copy what is kept.
   */
  constructor(map: BpfMap<unknown, unknown>, private readonly onRecord: (record: Buffer) => void) {
    const what = `read ring buffer ${map.info.name}`;
    if (map.info.type !== BPF_MAP_TYPE.RINGBUF) throw new KernelError(what, ERRNO.EINVAL, { extack: 'the map is no ring buffer' });
    const page = pageSize();
    this.size = map.info.maxEntries; // a power of two, a multiple of the page size
    this.consumer = mapShared(`${what}: map the consumer page`, map.fd, page, 0, true);
    try {
      this.producer = mapShared(`${what}: map the producer page and data`, map.fd, page + 2 * this.size, page, false);
    } catch (err) {
      this.consumer.unmap();
      throw err;
    }
    this.consumerPos = new BigUint64Array(this.consumer.buffer, 0, 1);
    this.producerPos = new BigUint64Array(this.producer.buffer, 0, 1);
    this.data = Buffer.from(this.producer.buffer, page, 2 * this.size);
  }

  /**
   * Hands every record committed now to the callback, in order, and gives their space back; returns how many
   * (discarded records are skipped). Never blocks. A record still being written ends the batch: it and those
   * after it come at the next call. A callback's exception is thrown after the batch (the records are consumed).
   */
  consume(): number {
    if (this.consumer === null) throw new KernelError('consume a closed ring buffer', ERRNO.EBADF);
    const start = Number(this.consumerPos[0]);
    const produced = Number(this.producerPos[0]);
    // No header is read before the producer position that covers it (the kernel publishes it after reserving).
    this.fence.full();
    // The headers first, up to the first one still busy; then a fence, so no byte of those records is read
    // before its header said it was committed (the kernel commits with a release store of the header). A
    // length that would run past the ring or the producer is not trusted: the batch ends there.
    let end = start;
    while (end < produced) {
      const len = this.data.readUInt32LE(end % this.size);
      if (len & BUSY || (len & ~(BUSY | DISCARD)) > this.size || end + padded(len) > produced) break;
      end += padded(len);
    }
    if (end === start) return 0;
    this.fence.full();
    let n = 0;
    let failure: unknown;
    for (let pos = start; pos < end; ) {
      const len = this.data.readUInt32LE(pos % this.size);
      const at = (pos % this.size) + HEADER;
      if (!(len & DISCARD)) {
        n++;
        try {
          this.onRecord(this.data.subarray(at, at + (len & ~(BUSY | DISCARD))));
        } catch (err) {
          failure ??= err;
        }
      }
      pos += padded(len);
    }
    // Every read of the batch done before the producer may reuse its space.
    this.fence.full();
    this.consumerPos[0] = BigInt(end);
    if (failure !== undefined) throw failure;
    return n;
  }

  close(): void {
    const consumer = this.consumer;
    if (consumer === null) return;
    this.consumer = null;
    consumer.unmap();
    this.producer.unmap();
  }
}

/** A record's whole size in the ring: header and length, rounded up to 8. */
function padded(len: number): number {
  return (HEADER + (len & ~(BUSY | DISCARD)) + 7) & ~7;
}
