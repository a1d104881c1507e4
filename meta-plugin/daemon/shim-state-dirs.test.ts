import { DEFAULT_STATE_DIR } from '../api/protocol';
import type { ConfFile } from '../planner/types';
import { shimStateDirs } from './shim-state-dirs';

const daemon = { socketPath: '/run/p/plexus.sock', stateDir: '/var/lib/p' };
const list = (...plugins: Record<string, unknown>[]): ConfFile => ({ path: '/etc/cni/net.d/x.conflist', kind: 'conflist', json: { cniVersion: '1.1.0', name: 'x', plugins } });
const single = (plugin: Record<string, unknown>): ConfFile => ({ path: '/etc/cni/net.d/x.conf', kind: 'conf', json: { cniVersion: '1.1.0', name: 'x', ...plugin } });

test.each<[string, ConfFile[], string[]]>([
  ['a plexus plugin on our socket with another stateDir', [list({ type: 'plexus', socketPath: '/run/p/plexus.sock', stateDir: '/srv/q' })], ['/srv/q']],
  ['the same directory spelled differently is ours', [list({ type: 'plexus', socketPath: '/run/p/../p/plexus.sock', stateDir: '/var/lib/p/' })], []],
  ['a plexus plugin with no stateDir queues in the default', [list({ type: 'plexus', socketPath: '/run/p/plexus.sock' })], [DEFAULT_STATE_DIR]],
  ['another daemon\'s socket is not ours to drain', [list({ type: 'plexus', socketPath: '/run/other.sock', stateDir: '/srv/q' })], []],
  ['a delegate\'s plexus-ipam section', [single({ type: 'macvlan', ipam: { type: 'plexus-ipam', socketPath: '/run/p/plexus.sock', stateDir: '/srv/ipam' } })], ['/srv/ipam']],
  ['another IPAM plugin is not a shim of ours', [single({ type: 'macvlan', ipam: { type: 'host-local', socketPath: '/run/p/plexus.sock', stateDir: '/srv/ipam' } })], []],
  ['relative paths are never trusted', [list({ type: 'plexus', socketPath: '/run/p/plexus.sock', stateDir: 'state' })], []],
  ['each directory once', [list({ type: 'plexus', socketPath: '/run/p/plexus.sock', stateDir: '/srv/q' }), list({ type: 'plexus', socketPath: '/run/p/plexus.sock', stateDir: '/srv/q' })], ['/srv/q']],
])('%s', (_t, files, want) => {
  expect(shimStateDirs(files, daemon)).toEqual(want);
});
