/**
 * Installing Plexus on a node as a cluster add-on does (the DaemonSet's job), and taking it away:
 *
 * - binaries go into the CNI bin directory by write-then-rename, so a plugin the runtime is executing keeps
 *   its old file and no copy ever fails with "text file busy"; the delegate names are symlinks made the same way;
 * - the Plexus conflist (`00-plexus.conflist`, with this daemon's socketPath and stateDir, so the shim and the
 *   daemon cannot disagree) is written atomically once the daemon is ready, and left in place when it stops:
 *   pods created while plexusd restarts wait for it (the shim's readiness timeout) rather than starting with
 *   the cluster network alone;
 * - the primary network is the conflist `install.primaryConflist` pins, else the first valid one in the
 *   directory as the kubelet orders them (never an empty or unreadable file, never ours);
 * - uninstall removes the conflist first and the binaries after, so no runtime ever finds a conflist whose
 *   plugin is gone.
 */
import { copyFileSync, chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, removeFileDurably, writeFileAtomic } from '../../core/atomic-file';
import { PlexusError } from '../../core/errors';

export interface InstallOptions {
  readonly cniBinDir: string;
  readonly cniConfDir: string;
  readonly conflistName: string;
  readonly primaryConflist?: string;
}

/** What a node needs in its CNI bin directory: the forwarder, the Node shim, and the names built-ins answer to. */
export const INSTALLED_BINARIES = ['plexus', 'plexus-shim'] as const;
export const INSTALLED_ALIASES = ['plexus-ipam', 'plexus-routed', 'plexus-sriov', 'plexus-dpdk'] as const;

const CONF_RE = /\.(conf|conflist|json)$/;

/** Copies `from` to `to` through a temporary file in the same directory and a rename. */
function replaceFile(from: string, to: string): void {
  const tmp = join(dirname(to), `.${randomBytes(4).toString('hex')}.plexus-tmp`);
  try {
    copyFileSync(from, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, to);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function replaceSymlink(target: string, at: string): void {
  const tmp = join(dirname(at), `.${randomBytes(4).toString('hex')}.plexus-tmp`);
  symlinkSync(target, tmp);
  renameSync(tmp, at);
}

export function installBinaries(fromDir: string, o: InstallOptions): string[] {
  mkdirSync(o.cniBinDir, { recursive: true });
  const done: string[] = [];
  for (const name of INSTALLED_BINARIES) {
    const src = join(fromDir, name);
    if (!existsSync(src)) throw new PlexusError('IoFailure', `install: ${src} is missing (run make build)`);
    replaceFile(src, join(o.cniBinDir, name));
    done.push(name);
  }
  for (const alias of INSTALLED_ALIASES) {
    replaceSymlink('plexus', join(o.cniBinDir, alias));
    done.push(alias);
  }
  fsyncDir(o.cniBinDir);
  return done;
}

/** The primary network's config file and its network name. */
export function findPrimaryConflist(o: InstallOptions): { file: string; name: string } {
  const candidates = o.primaryConflist ? [o.primaryConflist] : (safeList(o.cniConfDir).filter((n) => CONF_RE.test(n) && n !== o.conflistName).sort());
  const skipped: string[] = [];
  for (const file of candidates) {
    const path = join(o.cniConfDir, file);
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
      const conf = JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; plugins?: unknown; type?: unknown };
      const valid = typeof conf.name === 'string' && conf.name !== '' && (Array.isArray(conf.plugins) ? conf.plugins.length > 0 : typeof conf.type === 'string');
      if (!valid) throw new Error('no name, or neither plugins nor type');
      const types = Array.isArray(conf.plugins) ? conf.plugins.map((p) => (p as { type?: unknown })?.type) : [conf.type];
      if (types.includes('plexus')) throw new Error('a Plexus conflist');
      return { file, name: conf.name as string };
    } catch (e) {
      skipped.push(`${file} (${(e as Error).message})`);
    }
  }
  throw new PlexusError('NetworkNotFound', `install: no valid primary network conflist in ${o.cniConfDir}${o.primaryConflist ? ` (pinned: ${o.primaryConflist})` : ''}${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}`);
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The conflist runtimes load: Plexus first (`00-`), naming this daemon's socket and stateDir. */
export function writePlexusConflist(o: InstallOptions, daemon: { socketPath: string; stateDir: string }): string {
  mkdirSync(o.cniConfDir, { recursive: true });
  const path = join(o.cniConfDir, o.conflistName);
  const conflist = {
    cniVersion: '1.1.0',
    name: 'plexus',
    plugins: [{ type: 'plexus', socketPath: daemon.socketPath, stateDir: daemon.stateDir, readinessTimeoutSeconds: 30, capabilities: { portMappings: true, bandwidth: true } }],
  };
  writeFileAtomic(path, `${JSON.stringify(conflist, null, 2)}\n`, 0o644);
  return path;
}

/** Conflist first, binaries after: at no moment does a runtime find Plexus configured but missing. */
export function uninstall(o: InstallOptions): string[] {
  const removed: string[] = [];
  for (const [dir, name] of [[o.cniConfDir, o.conflistName], ...[...INSTALLED_ALIASES, ...INSTALLED_BINARIES].map((n) => [o.cniBinDir, n])] as Array<[string, string]>) {
    if (existsSync(dir) && removeFileDurably(join(dir, name))) removed.push(name);
  }
  return removed;
}
