/** `make demo` is one of the two commands the README promises: CI runs it too (hack/demo.js, built bin/). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/plexus-harness';

test('the demo attaches three pods to four networks, proves reachability and cleans up', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'hack/demo.js')], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('Demo complete');
  expect(r.stdout).not.toContain('FAILED');
}, 150_000);
