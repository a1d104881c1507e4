/**
 * Device Information spec 1.1 (D2-D4): for an attachment whose NAD names a resource, copy the device
 * plugin's file into a CNI file unique to the attachment, hand its path to plugins that declare
 * `CNIDeviceInfoFile`, read it back for network-status, and delete it on DEL.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeFileDurably } from '../../core/atomic-file';

export const DEFAULT_DEVINFO_DIR = '/var/run/k8s.cni.cncf.io/devinfo';

const flatten = (s: string) => s.replace(/\//g, '-');

/** D2: `<dir>/dp/<resourceName>-<deviceID>-device.json`, with '/' replaced by '-'. */
export const dpFilePath = (dir: string, resourceName: string, deviceId: string) =>
  join(dir, 'dp', `${flatten(resourceName)}-${flatten(deviceId)}-device.json`);

/** D3: unique per attachment: container ID and interface name identify it within the sandbox. */
export const cniFilePath = (dir: string, containerId: string, ifName: string) =>
  join(dir, 'cni', `${flatten(containerId)}-${flatten(ifName)}-device.json`);

/** Copy the DP file when there is one; returns the CNI file path, or undefined. */
export function prepareDeviceInfo(dir: string, resourceName: string, deviceId: string, containerId: string, ifName: string): string | undefined {
  const src = dpFilePath(dir, resourceName, deviceId);
  const dst = cniFilePath(dir, containerId, ifName);
  try {
    mkdirSync(join(dir, 'cni'), { recursive: true, mode: 0o755 });
    copyFileSync(src, dst);
    return dst;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return dst; // plugins may still write it (D4)
    throw e;
  }
}

export function readDeviceInfo(path: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function removeDeviceInfo(path: string): void {
  removeFileDurably(path);
}
