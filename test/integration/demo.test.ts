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
