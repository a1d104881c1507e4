/**
 * CNI GC's `cni.dev/valid-attachments` (CNI spec 1.1, GC): every attachment the runtime still holds, by
 * container ID and interface name. libcni also sends it as the legacy `cni.dev/attachments`, and sends `null`
 * for an empty list (a nil Go slice). The one parser for the runner, plexus-routed and plexus-ipam.
 */
import { PlexusError } from '../core/errors';

export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

export const VALID_ATTACHMENTS_KEY = 'cni.dev/valid-attachments';
const LEGACY_KEY = 'cni.dev/attachments';

/** Absent or null is an empty list; anything else malformed is invalid config naming the field. */
export function parseValidAttachments(config: Record<string, unknown>): ValidAttachment[] {
  const key = config[VALID_ATTACHMENTS_KEY] !== undefined ? VALID_ATTACHMENTS_KEY : LEGACY_KEY;
  const raw = config[key] ?? [];
  if (!Array.isArray(raw)) throw new PlexusError('InvalidConfig', `${key} must be a list of {"containerID", "ifname"}`);
  return raw.map((a: unknown, i) => {
    const v = a as { containerID?: unknown; ifname?: unknown } | null;
    for (const field of ['containerID', 'ifname'] as const) {
      const s = v?.[field];
      if (typeof s !== 'string' || s === '') throw new PlexusError('InvalidConfig', `${key}[${i}].${field} must be a non-empty string`);
    }
    return { containerID: v!.containerID as string, ifname: v!.ifname as string };
  });
}

/** The lookup key of an attachment: `containerID/ifname`. */
export const attachmentKey = (containerID: string, ifname: string): string => `${containerID}/${ifname}`;
