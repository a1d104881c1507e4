/**
 * Child process for ipam-kube.test.ts: multi-record commits through a KubeStore, to be SIGKILLed at chosen or
 * random moments. Every step is logged with a synchronous write before and after it.
 *   once KUBECONFIG: moves 40 from meta `a` to meta `b` and creates fixed `new` in one commit.
 *   loop KUBECONFIG N: random transfers between accounts acct-0..acct-N-1 forever; each also flips the payer's
 *     `flag`, creating or deleting fixed `flag:<payer>` in the same commit (so a flag and its record agree).
 */
import * as fs from 'node:fs';
import { KubeClient } from '../../../meta-plugin/source/kube/client';
import { KubeStore } from '../../../ipam/stores/kube-store';
import type { WriteOp } from '../../../ipam/stores/store';

const [mode, kubeconfig, n] = process.argv.slice(2) as [string, string, string];
const say = (line: string): void => void fs.writeSync(1, `${line}\n`);

export interface Account {
  balance: number;
  flag: boolean;
}

async function main(): Promise<void> {
  const store = await KubeStore.open({ api: new KubeClient(kubeconfig, 5000), txnTimeoutMs: 1000 });
  say('ready');
  if (mode === 'once') {
    const a = await store.get<number>('meta', 'a');
    const b = await store.get<number>('meta', 'b');
    if (!a || !b) throw new Error('accounts a and b are missing');
    say('begin');
    const r = await store.commit([
      { op: 'put', kind: 'meta', key: 'a', value: a.value - 40, rev: a.rev },
      { op: 'put', kind: 'meta', key: 'b', value: b.value + 40, rev: b.rev },
      { op: 'put', kind: 'fixed', key: 'new', value: { moved: 40 }, rev: 0 },
    ]);
    say(`done ${r.ok}`);
    return;
  }
  const count = Number(n);
  for (let i = 0; ; i++) {
    const from = `acct-${Math.floor(Math.random() * count)}`;
    let to = from;
    while (to === from) to = `acct-${Math.floor(Math.random() * count)}`;
    try {
      const [f, t, flag] = await Promise.all([store.get<Account>('meta', from), store.get<Account>('meta', to), store.get('fixed', `flag:${from}`)]);
      if (!f || !t) throw new Error(`account ${from} or ${to} is missing`);
      const amount = Math.min(f.value.balance, 1 + Math.floor(Math.random() * 10));
      const ops: WriteOp[] = [
        { op: 'put', kind: 'meta', key: from, value: { balance: f.value.balance - amount, flag: !f.value.flag }, rev: f.rev },
        { op: 'put', kind: 'meta', key: to, value: { ...t.value, balance: t.value.balance + amount }, rev: t.rev },
        flag ? { op: 'delete', kind: 'fixed', key: `flag:${from}`, rev: flag.rev } : { op: 'put', kind: 'fixed', key: `flag:${from}`, value: { by: i }, rev: 0 },
      ];
      say(`begin ${i}`);
      const r = await store.commit(ops);
      say(`done ${i} ${r.ok}`);
    } catch (e) {
      say(`retry ${i} ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  say(`error ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
