#!/usr/bin/env node
// `make lint`: project rules a type checker cannot see (DESIGN "Layout", decision 4; STYLE 3, 11).
//  1. Dependencies point down the layout table. The shared protocol vocabulary (meta-plugin/cni/*, which
//     imports nothing of ours but itself) and the planner's type declarations may be imported from below.
//  2. Only kernel/ imports koffi.
//  3. Product code never runs ip, tc, bpftool, ethtool or sysctl processes.
//  4. No skipped, focused or todo tests.
'use strict';
const { readdirSync, readFileSync, statSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const SKIP = new Set(['node_modules', 'bin', 'dist', '.git', 'results']);

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(path.relative(root, p));
  }
  return out;
}

const layer = (file) => file.split('/')[0];
const isTest = (file) => /(^|\/)(test|bench|hack)\//.test(file) || file.endsWith('.test.ts');
const SHARED = [/^meta-plugin\/cni\//, /^meta-plugin\/planner\/types\.ts$/];
// Who may import whom (besides itself and the shared vocabulary).
const ALLOWED = {
  'meta-plugin': ['delegates', 'sriov', 'dpdk-native', 'ipam', 'kernel'],
  delegates: ['ipam', 'kernel'],
  sriov: ['ipam', 'kernel', 'delegates'],
  'dpdk-native': ['ipam', 'kernel', 'delegates'],
  ipam: [],
  kernel: [],
};

const problems = [];
for (const file of walk(root)) {
  const text = readFileSync(path.join(root, file), 'utf8');
  const imports = [...text.matchAll(/(?:from\s+|require\(|import\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
  for (const spec of imports) {
    if (spec === 'koffi' && layer(file) !== 'kernel') problems.push(`${file}: imports koffi (only kernel/ may)`);
    if (!spec.startsWith('.') || isTest(file)) continue;
    const target = path.relative(root, path.resolve(root, path.dirname(file), spec));
    const from = layer(file);
    const to = layer(target);
    if (from === to || !(from in ALLOWED)) continue;
    if (SHARED.some((re) => re.test(target) || re.test(`${target}.ts`))) continue;
    if (!ALLOWED[from].includes(to)) problems.push(`${file}: imports ${target} (${from} may not depend on ${to})`);
  }
  if (!isTest(file) && /(exec|execFile|spawn)(Sync)?\(\s*['"](ip|tc|bpftool|ethtool|sysctl)['"]/.test(text)) {
    problems.push(`${file}: runs an ip/tc/bpftool/ethtool/sysctl process (use kernel/)`);
  }
  if (file.endsWith('.test.ts') && /\b(it|test|describe)\.(skip|only|todo)\(|\bx(it|test|describe)\(|\bf(it|describe)\(/.test(text)) {
    problems.push(`${file}: skipped, focused or todo test`);
  }
}
if (problems.length) {
  console.error(problems.map((p) => `lint: ${p}`).join('\n'));
  process.exit(1);
}
console.log('lint: ok');
