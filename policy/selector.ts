/**
 * Kubernetes label selectors (metav1.LabelSelector): matchLabels and matchExpressions, ANDed. `{}` selects
 * everything; a parsed selector is validated as the API server validates it (operators, and values only where
 * the operator takes them), so a manifest the API would refuse is refused here too (network-policy.md F1, F5).
 */
export type Labels = Readonly<Record<string, string>>;

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface SelectorRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: readonly string[];
}

/** A validated selector: every requirement must hold. matchLabels are `In` requirements with one value. */
export interface Selector {
  readonly requirements: readonly SelectorRequirement[];
}

export const EVERYTHING: Selector = { requirements: [] };

/** Problems are collected, not thrown: the caller names the object and the path. */
export function parseSelector(raw: unknown, path: string, problems: string[]): Selector {
  if (raw === undefined || raw === null) return EVERYTHING;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${path}: must be a label selector object`);
    return EVERYTHING;
  }
  const r = raw as { matchLabels?: unknown; matchExpressions?: unknown };
  const requirements: SelectorRequirement[] = [];
  for (const k of Object.keys(r)) if (k !== 'matchLabels' && k !== 'matchExpressions') problems.push(`${path}.${k}: unknown field`);
  if (r.matchLabels !== undefined && r.matchLabels !== null) {
    if (typeof r.matchLabels !== 'object' || Array.isArray(r.matchLabels)) problems.push(`${path}.matchLabels: must be a map of strings`);
    else {
      for (const [key, value] of Object.entries(r.matchLabels as Record<string, unknown>)) {
        if (typeof value !== 'string') problems.push(`${path}.matchLabels.${key}: must be a string`);
        else if (checkKey(key, `${path}.matchLabels`, problems)) requirements.push({ key, operator: 'In', values: [value] });
      }
    }
  }
  if (r.matchExpressions !== undefined && r.matchExpressions !== null) {
    if (!Array.isArray(r.matchExpressions)) problems.push(`${path}.matchExpressions: must be a list`);
    else {
      r.matchExpressions.forEach((e: unknown, i: number) => {
        const at = `${path}.matchExpressions[${i}]`;
        const x = (e ?? {}) as { key?: unknown; operator?: unknown; values?: unknown };
        if (typeof x.key !== 'string' || !checkKey(x.key, at, problems)) {
          if (typeof x.key !== 'string') problems.push(`${at}.key: required`);
          return;
        }
        const op = x.operator;
        if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') {
          problems.push(`${at}.operator: must be In, NotIn, Exists or DoesNotExist, not ${JSON.stringify(op)}`);
          return;
        }
        const values = x.values ?? [];
        if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
          problems.push(`${at}.values: must be a list of strings`);
          return;
        }
        if ((op === 'In' || op === 'NotIn') && values.length === 0) problems.push(`${at}.values: must be non-empty when operator is ${op}`);
        else if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) problems.push(`${at}.values: must be empty when operator is ${op}`);
        else requirements.push({ key: x.key, operator: op, values: values as string[] });
      });
    }
  }
  return { requirements };
}

// A qualified name with an optional DNS-subdomain prefix, as label keys are (apimachinery IsQualifiedName).
const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkKey(key: string, path: string, problems: string[]): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const ok = NAME.test(name) && (prefix === undefined || (prefix.length <= 253 && PREFIX.test(prefix)));
  if (!ok) problems.push(`${path}: ${JSON.stringify(key)} is not a valid label key`);
  return ok;
}

export function matches(s: Selector, labels: Labels): boolean {
  for (const r of s.requirements) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = labels[r.key];
    switch (r.operator) {
      case 'In':
        if (!has || !r.values.includes(v as string)) return false;
        break;
      case 'NotIn':
        if (has && r.values.includes(v as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
