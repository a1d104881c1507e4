/**
 * Devices a device plugin gave a pod (Device Info spec §4.1, D2): the planner takes them as plain data; the
 * daemon asks a DeviceLookup for them before planning (the SR-IOV work implements it over kubelet's
 * PodResources API).
 */
import type { PodRef } from '../../cni/ids';

/** NAD annotation naming the device-plugin resource a network's attachments draw devices from. */
export const RESOURCE_NAME_ANNOTATION = 'k8s.v1.cni.cncf.io/resourceName';

/** What a lookup found: device IDs per resource, and why it may have found less than it should. */
export interface DeviceAnswer {
  devices: Record<string, string[]>;
  /** E.g. "kubelet PodResources API unreachable; checkpoint has no entry": said in a 110 for a missing device. */
  problem?: string;
}

export interface DeviceLookup {
  /** Device IDs allocated to the pod, per resource name, sorted. Resources it holds none of are absent. */
  devicesFor(pod: PodRef, resourceNames: string[]): Promise<DeviceAnswer>;
}

/** For nodes without device plugins (no `sriov` section): no pod holds any device. */
export class NoDevices implements DeviceLookup {
  async devicesFor(): Promise<DeviceAnswer> {
    return { devices: {}, problem: 'this plexusd looks up no devices (its config has no `sriov` section)' };
  }
}

/** Hands out a pod's devices in order, each once, across all attachments of one plan. */
export class DevicePool {
  private readonly taken = new Map<string, number>();

  constructor(private readonly devices: Readonly<Record<string, readonly string[]>>) {}

  /** How many devices of `resourceName` the pod was given. */
  given(resourceName: string): number {
    return Object.hasOwn(this.devices, resourceName) ? (this.devices[resourceName]?.length ?? 0) : 0;
  }

  /** The next unused device of `resourceName`, or undefined when none is left. */
  take(resourceName: string): string | undefined {
    if (!Object.hasOwn(this.devices, resourceName)) return undefined;
    const used = this.taken.get(resourceName) ?? 0;
    const id = this.devices[resourceName]?.[used];
    if (id !== undefined) this.taken.set(resourceName, used + 1);
    return id;
  }
}
