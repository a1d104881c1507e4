/**
 * A network's CNI configuration as Plexus holds it (CNI spec 2.2 "Network configuration" and "Plugin object"):
 * the shape the planner produces, the runner records and every delegate receives one plugin of.
 */

/** One plugin object of a CNI config (CNI spec 2.2 "Plugin object"); unknown keys are preserved. */
export type PluginConf = Record<string, unknown> & { type: string; capabilities?: Record<string, boolean> };

/**
 * A delegate network, always in list form. A single-plugin `.conf` (or a NAD whose spec.config is one plugin)
 * becomes a list of one with `single: true`, so the runner treats both the same way (libcni AddNetwork vs
 * AddNetworkList differ only in chaining, and a one-plugin list has no chaining).
 */
export interface NetworkConfList {
  cniVersion: string;
  /**
   * True when the config named no cniVersion and the planner filled in the runtime's: the runner may then
   * pick the highest version the delegate binary supports (asked with VERSION) instead.
   */
  cniVersionInjected?: boolean;
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  single: boolean;
  plugins: PluginConf[];
}
