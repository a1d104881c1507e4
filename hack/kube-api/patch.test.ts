import { jsonPatch, mergePatch, strategicMergePatch } from './patch';
import { fieldSelector, labelSelector } from './selectors';
import type { KubeObject } from './types';

describe('patches', () => {
  test('JSON merge patch (RFC 7386): objects merge, null deletes, lists replace', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { b: null, d: 3 }, l: [3] })).toEqual({ a: { c: 2, d: 3 }, l: [3] });
  });

  test('JSON patch (RFC 6902): every operation; a failed test or a missing path is 422 and the target is untouched', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    expect(jsonPatch(doc, [
      { op: 'add', path: '/a/b/-', value: 3 }, { op: 'replace', path: '/c', value: 'y' }, { op: 'copy', from: '/c', path: '/d' },
      { op: 'move', from: '/d', path: '/e' }, { op: 'remove', path: '/a/b/0' }, { op: 'test', path: '/e', value: 'y' }, { op: 'add', path: '/k~1v', value: 1 },
    ])).toEqual({ a: { b: [2, 3] }, c: 'y', e: 'y', 'k/v': 1 });
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/c', value: 'z' }])).toThrow(expect.objectContaining({ code: 422 }));
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/nope/x', value: 1 }])).toThrow(expect.objectContaining({ code: 422 }));
    expect(doc).toEqual({ a: { b: [1, 2] }, c: 'x' });
  });

  test('strategic merge patch: containers merge by name, $patch delete and replace, finalizers as a set, $deleteFromPrimitiveList, $setElementOrder ignored', () => {
    const pod = { metadata: { finalizers: ['a'] }, spec: { containers: [{ name: 'a', image: 'x', env: [{ name: 'K', value: '1' }] }, { name: 'b', image: 'y' }] } };
    expect(strategicMergePatch(pod, {
      metadata: { finalizers: ['b'] },
      spec: { '$setElementOrder/containers': [{ name: 'a' }, { name: 'c' }], containers: [{ name: 'a', env: [{ name: 'L', value: '2' }] }, { name: 'b', $patch: 'delete' }, { name: 'c', image: 'z' }] },
    })).toEqual({ metadata: { finalizers: ['a', 'b'] }, spec: { containers: [{ name: 'a', image: 'x', env: [{ name: 'K', value: '1' }, { name: 'L', value: '2' }] }, { name: 'c', image: 'z' }] } });
    expect(strategicMergePatch({ spec: { a: 1, b: 2 } }, { spec: { $patch: 'replace', c: 3 } })).toEqual({ spec: { c: 3 } });
    expect(strategicMergePatch({ metadata: { finalizers: ['a', 'b'] } }, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } })).toEqual({ metadata: { finalizers: ['b'] } });
    expect(strategicMergePatch({ spec: { args: ['1', '2'] } }, { spec: { args: ['3'] } })).toEqual({ spec: { args: ['3'] } });
  });
});

describe('selectors', () => {
  const obj = (labels: Record<string, string>, extra: Record<string, unknown> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'n', labels }, ...extra });
  test.each([
    ['app=web', true], ['app==web', true], ['app!=web', false], ['app in (web, db)', true], ['app notin (web)', false],
    ['tier', false], ['!tier', true], ['app=web,!tier', true], ['app=web,tier', false], ['', true],
  ])('labels %j on app=web: %s', (sel, want) => expect(labelSelector(sel)(obj({ app: 'web' }))).toBe(want));

  test('fields: supported ones only, = and !=; others are refused naming the field', () => {
    const pod = obj({}, { spec: { nodeName: 'n1' } });
    expect(fieldSelector('spec.nodeName=n1,metadata.name=p', ['metadata.name', 'spec.nodeName'])(pod)).toBe(true);
    expect(fieldSelector('spec.nodeName!=n1', ['spec.nodeName'])(pod)).toBe(false);
    expect(() => fieldSelector('spec.bogus=1', ['spec.nodeName'])).toThrow('field label not supported: spec.bogus');
  });
});
