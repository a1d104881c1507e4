/**
 * Branded types parsed once at the edge (STYLE 5). After parsing, a container ID, an interface name or a
 * netns path is never a bare string that could be the wrong one, and nothing unvalidated reaches a file path.
 */
import { PlexusError } from '../core/errors';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type ContainerId = Brand<string, 'ContainerId'>;
export type IfName = Brand<string, 'IfName'>;
export type NetnsPath = Brand<string, 'NetnsPath'>;

// CNI spec 2.2: non-empty, starts with an alphanumeric, then alphanumerics, '_', '.', '-'. The length cap
// keeps the ID usable as a file name (255 bytes) with room for our suffixes; real runtimes use 64.
const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$/;

export function parseContainerId(raw: string | undefined, envName = 'CNI_CONTAINERID'): ContainerId {
  if (raw === undefined || raw === '') throw new PlexusError('InvalidEnv', `${envName} is required`);
  if (!CONTAINER_ID_RE.test(raw)) {
    throw new PlexusError(
      'InvalidEnv',
      `${envName} ${JSON.stringify(raw.slice(0, 64))} is invalid: it must start with a letter or digit, ` +
        `contain only letters, digits, '_', '.', '-', and be at most 200 characters`,
    );
  }
  return raw as ContainerId;
}

/** Linux interface name rules (dev_valid_name): 1..15 bytes, not '.' or '..', no '/', ':' or whitespace. */
export function ifNameProblem(raw: string): string | undefined {
  if (raw.length === 0) return 'it is empty';
  if (Buffer.byteLength(raw) > 15) return 'it is longer than 15 bytes';
  if (raw === '.' || raw === '..') return `'${raw}' is reserved`;
  if (/[/:\s]/.test(raw)) return "it contains '/', ':' or whitespace";
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(raw)) return 'it contains a control character';
  return undefined;
}

export function parseIfName(raw: string | undefined, envName = 'CNI_IFNAME'): IfName {
  if (raw === undefined || raw === '') throw new PlexusError('InvalidEnv', `${envName} is required`);
  const problem = ifNameProblem(raw);
  if (problem) throw new PlexusError('InvalidEnv', `${envName} ${JSON.stringify(raw)} is invalid: ${problem}`);
  return raw as IfName;
}

/** A netns path: absolute, normalised, no NUL. Existence is checked separately where the command needs it. */
export function parseNetnsPath(raw: string | undefined, envName = 'CNI_NETNS'): NetnsPath {
  if (raw === undefined || raw === '') throw new PlexusError('InvalidEnv', `${envName} is required`);
  if (!raw.startsWith('/') || raw.includes('\0') || raw.split('/').some((p) => p === '..')) {
    throw new PlexusError('InvalidEnv', `${envName} ${JSON.stringify(raw)} is not an absolute network namespace path`);
  }
  return raw as NetnsPath;
}

/** A pod as the runtime names it. `uid` only when the runtime passes K8S_POD_UID. */
export interface PodRef {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

export const podKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;
