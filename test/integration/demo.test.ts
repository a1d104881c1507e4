/** `make demo` is one of the two commands the README promises: CI runs it too (hack/demo.sh, built bin/). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/plexus-harness';

test('the demo builds a two-node cluster, attaches three pods to four networks, proves reachability and cleans up', () => {
  const r = spawnSync('bash', [join(ROOT, 'hack/demo.sh')], { encoding: 'utf8', timeout: 170_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('Demo complete');
  expect(r.stdout).not.toContain('FAILED');
}, 180_000);

/** `make demo-k8s`: the same promise for Plexus on the Kubernetes API (hack/demo-k8s.sh, the test API server). */
test('demo-k8s applies the examples with kubectl, attaches two pods from the API source, hot-plugs a network, reads network-status back with kubectl and cleans up', () => {
  const r = spawnSync('bash', [join(ROOT, 'hack/demo-k8s.sh')], { encoding: 'utf8', timeout: 110_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('3/3 replies');
  expect(r.stdout).toContain('network-status after DEL: cleared');
  expect(r.stdout).toContain('Demo complete');
  expect(r.stdout).not.toContain('FAILED');
}, 120_000);
