/**
 * What a person debugging a failed test wants to see of one netns: its addresses, routes, permanent
 * neighbours and (optionally) a VXLAN device's forwarding database. Witnesses are `ip` and `bridge`.
 */
import { run } from './process';

export function diagnoseNetns(netns: string, opts: { fdb?: string } = {}): string {
  const out: string[] = [];
  const show = (cmd: string, args: string[]): void => {
    const r = run('ip', ['netns', 'exec', netns, cmd, ...args], { allowFail: true });
    out.push(`$ ${cmd} ${args.join(' ')}`, (r.stdout + r.stderr).trimEnd());
  };
  show('ip', ['-br', 'addr']);
  for (const f of ['-4', '-6']) show('ip', [f, 'route']);
  show('ip', ['neigh']);
  if (opts.fdb) show('bridge', ['fdb', 'show', 'dev', opts.fdb]);
  return out.join('\n');
}
