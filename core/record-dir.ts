/**
 * A directory of small JSON records, one file per key (`<dir>/<key>.json`), each written atomically
 * (atomic-file.ts). Keys are checked against a pattern before they become a file name, so no input reaches
 * a path unchecked. A torn or foreign file is skipped by `list` (and left for an operator to see).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeFileDurably, writeFileAtomic } from './atomic-file';

export class RecordDir<T> {
  constructor(
    readonly dir: string,
    private readonly key: RegExp,
    private readonly what: string,
  ) {}

  private file(key: string): string {
    if (!this.key.test(key)) throw new Error(`invalid ${this.what} ${JSON.stringify(key)}`);
    return join(this.dir, `${key}.json`);
  }

  get(key: string): T | undefined {
    try {
      return JSON.parse(readFileSync(this.file(key), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  put(key: string, rec: T): void {
    writeFileAtomic(this.file(key), JSON.stringify(rec));
  }

  remove(key: string): void {
    removeFileDurably(this.file(key));
  }

  /** Every readable record. */
  list(): T[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith('.json') && this.key.test(n.slice(0, -5)))
      .map((n) => this.get(n.slice(0, -5)))
      .filter((r): r is T => r !== undefined);
  }
}
