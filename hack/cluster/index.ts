/**
 * A local multi-node cluster in network namespaces (cluster.ts), and the pieces it is built from, shared by
 * `make demo`, the integration tests' harness and the benchmarks: the process runner (process.ts), a plexusd
 * process (daemon.ts), manifests that are awaited until loaded (manifests.ts), removal by name and PID
 * (leftovers.ts) and a netns's state for failure messages (diagnose.ts).
 */
export * from './cluster';
export * from './daemon';
export * from './diagnose';
export * from './etcd';
export * from './fake-sriov';
export * from './leftovers';
export * from './manifests';
export * from './node-config';
export * from './process';
export * from './types';
