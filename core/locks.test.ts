import { KeyedMutex, Semaphore } from './locks';

const tick = (ms = 0) => new Promise<void>((r) => setTimeout(r, ms));

/** Counts tasks in flight, overall and per key, and remembers the maxima. */
class Tracker {
  active = 0;
  max = 0;
  private readonly perKey = new Map<string, number>();
  readonly maxPerKey = new Map<string, number>();
  readonly started: string[] = [];

  async task(key: string, id: string, ms: number): Promise<string> {
    this.started.push(id);
    this.active++;
    this.max = Math.max(this.max, this.active);
    const n = (this.perKey.get(key) ?? 0) + 1;
    this.perKey.set(key, n);
    this.maxPerKey.set(key, Math.max(this.maxPerKey.get(key) ?? 0, n));
    try {
      await tick(ms);
      return id;
    } finally {
      this.active--;
      this.perKey.set(key, this.perKey.get(key)! - 1);
    }
  }
}

describe('KeyedMutex (S34: one operation per pod at a time)', () => {
  test('serialises one key, in arrival order', async () => {
    const mutex = new KeyedMutex();
    const t = new Tracker();
    const ids = ['ADD', 'CHECK', 'DEL', 'ADD2', 'DEL2'];
    const out = await Promise.all(ids.map((id, i) => mutex.run('team/web-0', () => t.task('team/web-0', id, 5 - i))));
    expect(out).toEqual(ids);
    expect(t.started).toEqual(ids);
    expect(t.max).toBe(1);
  });

  test('runs different keys in parallel', async () => {
    const mutex = new KeyedMutex();
    const t = new Tracker();
    const keys = ['a', 'b', 'c', 'd'];
    await Promise.all(keys.flatMap((k) => [1, 2, 3].map((i) => mutex.run(k, () => t.task(k, `${k}${i}`, 5)))));
    expect(t.max).toBe(keys.length);
    for (const k of keys) expect(t.maxPerKey.get(k)).toBe(1);
  });

  test('a different key is not held up by a stuck one', async () => {
    const mutex = new KeyedMutex();
    let release!: () => void;
    const stuck = mutex.run('a', () => new Promise<void>((r) => (release = r)));
    await expect(mutex.run('b', async () => 'b done')).resolves.toBe('b done');
    release();
    await stuck;
  });

  test('a failing task releases the key for the next, and the error reaches its caller', async () => {
    const mutex = new KeyedMutex();
    const first = mutex.run('k', async () => {
      await tick(2);
      throw new Error('boom');
    });
    const second = mutex.run('k', async () => 'next');
    await expect(first).rejects.toThrow('boom');
    await expect(second).resolves.toBe('next');
  });

  test('keeps no state for idle keys (a long-running daemon sees many pods)', async () => {
    const mutex = new KeyedMutex();
    await Promise.all(Array.from({ length: 50 }, (_, i) => mutex.run(`pod-${i % 7}`, () => tick(1))));
    // White-box: the per-key tails must be gone once every queue drained.
    expect((mutex as unknown as { tails: Map<string, unknown> }).tails.size).toBe(0);
  });
});

describe('Semaphore', () => {
  test.each([1, 3, 16])('never exceeds a limit of %i under a hammering of 300 tasks', async (limit) => {
    const sem = new Semaphore(limit);
    const t = new Tracker();
    let seenInFlight = 0;
    const tasks = Array.from({ length: 300 }, (_, i) =>
      sem.run(async () => {
        seenInFlight = Math.max(seenInFlight, sem.inFlight);
        // Mix synchronous finishes, microtask and timer waits.
        if (i % 3 === 0) return t.task('k', `t${i}`, 0).then(() => i);
        if (i % 3 === 1) return t.task('k', `t${i}`, i % 4).then(() => i);
        return i;
      }),
    );
    const out = await Promise.all(tasks);
    expect(out).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(t.max).toBeLessThanOrEqual(limit);
    expect(t.max).toBe(limit); // and the limit is actually used
    expect(seenInFlight).toBeLessThanOrEqual(limit);
    expect(sem.inFlight).toBe(0);
  });

  test('a failing task frees its slot', async () => {
    const sem = new Semaphore(1);
    await expect(sem.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(sem.run(async () => 'ok')).resolves.toBe('ok');
    expect(sem.inFlight).toBe(0);
  });

  test('waiters are served in arrival order', async () => {
    const sem = new Semaphore(1);
    const order: number[] = [];
    await Promise.all([0, 1, 2, 3, 4].map((i) => sem.run(async () => void order.push(i))));
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});
