/**
 * Removal by name and PID, shared by Cluster.destroy() and a new cluster with the same prefix: whatever a
 * crashed run left (daemons, netns, bpffs pins, files) is found again without any state of this process.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { waitGoneSync } from './daemon';
import { listDir, readText, run } from './process';

export const RUN_ROOT = '/run/plexus-cluster';
export const BPF_ROOT = '/sys/fs/bpf/plexus';
/** Letters and digits only: `<prefix>-...` then never matches the names of another prefix. */
export const PREFIX_RE = /^[a-z][a-z0-9]{0,15}$/;

/** Netns of a prefix: `<prefix>-ul`, `<prefix>-n<i>`, `<prefix>-n<i>-<pod>`. */
export function clusterNetns(prefix: string): string[] {
  const re = new RegExp(`^${prefix}-(ul|n\\d+(-.+)?)$`);
  const out = run('ip', ['-j', 'netns', 'list']).stdout.trim();
  const list = out ? (JSON.parse(out) as { name: string }[]) : [];
  return list.map((n) => n.name).filter((n) => re.test(n));
}

/**
 * Kills the daemons named by the PID files under rootDir (only if their command line still names that node's
 * config: a PID may have been reused), then deletes the prefix's netns (pods first), bpffs pins and root dir.
 */
export function removeLeftovers(prefix: string, opts: { rootDir?: string } = {}): { removed: string[]; problems: string[] } {
  if (!PREFIX_RE.test(prefix)) throw new Error(`cluster prefix "${prefix}" must match ${PREFIX_RE}`);
  const rootDir = opts.rootDir ?? join(RUN_ROOT, prefix);
  const removed: string[] = [];
  const problems: string[] = [];
  for (const node of listDir(rootDir)) {
    const pidFile = join(rootDir, node, 'plexusd.pid');
    const pid = Number.parseInt(readText(pidFile), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    if (readText(`/proc/${pid}/cmdline`).split('\0').includes(join(rootDir, node, 'plexusd.yaml'))) {
      process.kill(pid, 'SIGKILL');
      if (!waitGoneSync(pid, 5000)) problems.push(`plexusd ${pid} survived SIGKILL`);
      else removed.push(`plexusd ${pid}`);
    }
  }
  const names = clusterNetns(prefix).sort((a, b) => b.length - a.length);
  for (const name of names) {
    const r = run('ip', ['netns', 'del', name], { allowFail: true });
    if (r.code === 0) removed.push(`netns ${name}`);
    else problems.push(`netns ${name}: ${r.stderr.trim()}`);
  }
  const pinRe = new RegExp(`^${prefix}-n\\d+$`);
  for (const pin of listDir(BPF_ROOT).filter((p) => pinRe.test(p))) {
    try {
      rmSync(join(BPF_ROOT, pin), { recursive: true, force: true });
      removed.push(`pins ${join(BPF_ROOT, pin)}`);
    } catch (e) {
      problems.push(`pins ${join(BPF_ROOT, pin)}: ${(e as Error).message}`);
    }
  }
  if (existsSync(rootDir)) {
    rmSync(rootDir, { recursive: true, force: true });
    removed.push(`dir ${rootDir}`);
  }
  return { removed, problems };
}
