/**
 * Label and field selectors as the API server reads them from `labelSelector=` and `fieldSelector=`.
 *
 * Labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma-joined (AND). Fields: `f=v`,
 * `f==v`, `f!=v`, comma-joined, over the fields each resource supports (others are 400, as the real server
 * answers "field label not supported").
 */
import type { KubeObject } from './types';

export type Matcher = (obj: KubeObject) => boolean;

export class SelectorError extends Error {}

/** Splits on commas outside parentheses. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

export function labelSelector(text: string | null): Matcher {
  if (!text) return () => true;
  const tests = terms(text).map((t): ((labels: Record<string, string>) => boolean) => {
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t);
    if (m) {
      const [, key, op, list] = m;
      const values = new Set(list!.split(',').map((v) => v.trim()).filter(Boolean));
      return op === 'in' ? (l) => key! in l && values.has(l[key!]!) : (l) => !(key! in l) || !values.has(l[key!]!);
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(t);
    if (m) {
      const [, key, op, value] = m;
      return op === '!=' ? (l) => l[key!] !== value : (l) => l[key!] === value;
    }
    m = /^(!?)([\w./-]+)$/.exec(t);
    if (m) return m[1] ? (l) => !(m![2]! in l) : (l) => m![2]! in l;
    throw new SelectorError(`unable to parse requirement: ${JSON.stringify(t)}`);
  });
  return (obj) => {
    const labels = (obj.metadata.labels ?? {}) as Record<string, string>;
    return tests.every((f) => f(labels));
  };
}

/** The value of a dotted field path, as a string ('' when absent). */
function fieldValue(obj: KubeObject, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined;
  return cur === undefined || cur === null ? '' : String(cur);
}

export function fieldSelector(text: string | null, supported: readonly string[]): Matcher {
  if (!text) return () => true;
  const tests = terms(text).map((t) => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw new SelectorError(`invalid field selector: ${JSON.stringify(t)}`);
    const [, field, op, value] = m;
    if (!supported.includes(field!)) throw new SelectorError(`field label not supported: ${field}`);
    return op === '!=' ? (o: KubeObject) => fieldValue(o, field!) !== value : (o: KubeObject) => fieldValue(o, field!) === value;
  });
  return (obj) => tests.every((f) => f(obj));
}
