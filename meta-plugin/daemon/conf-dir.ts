/**
 * CNI configs in `confDir` that the cluster network or a NAD with an empty spec may name (S5). Files are
 * re-read only when the directory's listing, sizes or mtimes change. Unparseable files are skipped and
 * reported once per change.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ConfFile } from '../planner/types';

const CONF_RE = /\.(conf|conflist|json)$/;

export class ConfDir {
  private cache: { signature: string; files: ConfFile[] } = { signature: '', files: [] };

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** The parsed configs, in lexicographic file order as libcni loads them. */
  files(): readonly ConfFile[] {
    const entries = this.list();
    const signature = entries.map((e) => `${e.name}:${e.size}:${e.mtimeMs}`).join('|');
    if (signature !== this.cache.signature) this.cache = { signature, files: this.read(entries.map((e) => e.name)) };
    return this.cache.files;
  }

  private list(): { name: string; size: number; mtimeMs: number }[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => CONF_RE.test(n)).sort();
    } catch {
      return [];
    }
    return names.flatMap((name) => {
      try {
        const st = statSync(join(this.dir, name));
        return st.isFile() ? [{ name, size: st.size, mtimeMs: st.mtimeMs }] : [];
      } catch {
        return [];
      }
    });
  }

  private read(names: string[]): ConfFile[] {
    const out: ConfFile[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      try {
        const json = JSON.parse(readFileSync(path, 'utf8')) as unknown;
        if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
        const obj = json as Record<string, unknown>;
        const kind = name.endsWith('.conflist') || Array.isArray(obj['plugins']) ? 'conflist' : 'conf';
        out.push({ path, kind, json: obj });
      } catch (e) {
        this.log.warn({ file: path, err: (e as Error).message }, 'CNI config skipped');
      }
    }
    return out;
  }
}
