import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delQueueDir, enqueueDel, listQueuedDels, removeQueuedDel, type QueuedDel } from './del-queue';

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'plexus-delq-'));
});
afterEach(() => {
  jest.restoreAllMocks();
  rmSync(stateDir, { recursive: true, force: true });
});

const item = (containerId: string): QueuedDel => ({
  env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: containerId, CNI_IFNAME: 'eth0', CNI_NETNS: '' },
  config: JSON.stringify({ cniVersion: '1.1.0', name: 'plexus', type: 'plexus' }),
  queuedAt: '2024-01-01T00:00:00.000Z',
});

/** Enqueue at a fixed clock value, so ordering does not depend on how fast the test runs. */
function enqueueAt(ms: number, q: QueuedDel): string {
  const spy = jest.spyOn(Date, 'now').mockReturnValue(ms);
  try {
    return enqueueDel(stateDir, q);
  } finally {
    spy.mockRestore();
  }
}

test('an empty or missing queue lists nothing', () => {
  expect(listQueuedDels(stateDir)).toEqual([]);
  expect(listQueuedDels(join(stateDir, 'does-not-exist'))).toEqual([]);
});

test('enqueue then list returns the item exactly as queued', () => {
  const file = enqueueDel(stateDir, item('c1'));
  expect(file).toMatch(/^\d{15}-[0-9a-f]{12}\.json$/);
  expect(listQueuedDels(stateDir)).toEqual([{ file, item: item('c1') }]);
});

test('items list oldest first, whatever order the files were written in', () => {
  const late = enqueueAt(1_700_000_000_500, item('late'));
  const early = enqueueAt(1_700_000_000_000, item('early'));
  const middle = enqueueAt(1_700_000_000_200, item('middle'));
  // Zero padding keeps lexical order equal to numeric order across digit-count changes.
  const tiny = enqueueAt(999, item('tiny'));
  expect(listQueuedDels(stateDir).map((q) => q.file)).toEqual([tiny, early, middle, late]);
  expect(listQueuedDels(stateDir).map((q) => q.item?.env['CNI_CONTAINERID'])).toEqual(['tiny', 'early', 'middle', 'late']);
});

test('queue files are 0600 in a 0700 directory, and no temp file is left behind', () => {
  const file = enqueueDel(stateDir, item('c1'));
  expect(statSync(join(delQueueDir(stateDir), file)).mode & 0o777).toBe(0o600);
  expect(statSync(delQueueDir(stateDir)).mode & 0o777).toBe(0o700);
  expect(readdirSync(delQueueDir(stateDir))).toEqual([file]);
});

test('remove deletes one item; removing it again is not an error', () => {
  const a = enqueueAt(1000, item('a'));
  const b = enqueueAt(2000, item('b'));
  removeQueuedDel(stateDir, a);
  expect(listQueuedDels(stateDir).map((q) => q.file)).toEqual([b]);
  expect(() => removeQueuedDel(stateDir, a)).not.toThrow();
  expect(() => removeQueuedDel(join(stateDir, 'nowhere'), b)).not.toThrow();
});

test.each<[string, string]>([
  ['truncated JSON', '{"env":{"CNI_COMMAND":"DEL"'],
  ['empty file', ''],
  ['binary garbage', '\u0000\u0001\u0002'],
])('a corrupt file (%s) is reported, not thrown, and its neighbours still load', (_title, text) => {
  const good = enqueueAt(2000, item('good'));
  const bad = '000000000001000-badbadbadbad.json';
  writeFileSync(join(delQueueDir(stateDir), bad), text);
  const listed = listQueuedDels(stateDir);
  expect(listed).toHaveLength(2);
  expect(listed[0]).toEqual({ file: bad, error: expect.any(String) });
  expect(listed[0]).not.toHaveProperty('item');
  expect(listed[1]).toEqual({ file: good, item: item('good') });
});

test('temp files and files of other types are not items', () => {
  enqueueAt(1000, item('a'));
  writeFileSync(join(delQueueDir(stateDir), '.000000000002000-abc.json.tmp'), '{');
  writeFileSync(join(delQueueDir(stateDir), '.hidden.json'), '{');
  writeFileSync(join(delQueueDir(stateDir), 'notes.txt'), 'x');
  expect(listQueuedDels(stateDir).map((q) => q.item?.env['CNI_CONTAINERID'])).toEqual(['a']);
});
