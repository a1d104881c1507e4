/**
 * CNI versions: which ones Plexus speaks, how to compare them and which operation needs which (CNI spec 2.2
 * "Version negotiation"). Core-module-only: the shim bundles this file.
 */
import { PlexusError } from '../core/errors';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

/** Compare dotted versions numerically: -1, 0, 1. Non-numeric parts compare as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export const versionAtLeast = (v: string, min: string): boolean => compareVersions(v, min) >= 0;

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/**
 * The version a config asks for. CNI 1.1 `cniVersions`: the highest listed version we support wins; else
 * `cniVersion`; a config naming none is 0.1.0 as in libcni's decoder (and so unsupported).
 */
export function configVersion(conf: Record<string, unknown>): string {
  const list = conf['cniVersions'];
  if (Array.isArray(list)) {
    const ours = list.filter(isSupportedVersion).sort(compareVersions);
    if (ours.length > 0) return ours[ours.length - 1]!;
  }
  const v = conf['cniVersion'];
  return typeof v === 'string' && v !== '' ? v : '0.1.0';
}

/** The minimum config version each command needs (CHECK: 0.4.0; STATUS and GC: 1.1.0). */
const MIN_VERSION: Record<string, string> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

/** Throw code 1 unless `version` is one we speak and new enough for `command`. */
export function requireVersionFor(command: string, version: string): CniVersion {
  if (!isSupportedVersion(version)) {
    throw new PlexusError(
      'IncompatibleVersion',
      `incompatible CNI versions: config cniVersion "${version}" is not one of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const min = MIN_VERSION[command];
  if (min && !versionAtLeast(version, min)) {
    throw new PlexusError('IncompatibleVersion', `${command} needs cniVersion ${min} or later, config has "${version}"`);
  }
  return version;
}

/** What VERSION prints (CNI spec 2.1 "VERSION"). */
export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

export function versionInfo(): VersionInfo {
  return { cniVersion: LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
