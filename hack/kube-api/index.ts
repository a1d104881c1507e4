/** The test Kubernetes API server (see server.ts for what it serves and what it does not). */
export { KubeApiServer, type KubeApiOptions, type RbacRule, type RequestRecord } from './server';
export type { KubeObject } from './types';
