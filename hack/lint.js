#!/usr/bin/env node
// `make lint`: project rules a type checker cannot see (DESIGN "Layout", decision 4; STYLE 3, 11, 21).
//  1. Dependencies point down DESIGN's layout table, with no exceptions. core/ imports nothing but Node's
//     core modules (type-only imports aside); another folder reaches ipam/ only through its public face.
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
// DESIGN "Layout": who may import whom, besides itself.
const ALLOWED = {
  'meta-plugin': ['policy', 'sriov', 'dpdk-native', 'delegates', 'ipam', 'kernel', 'cni', 'core'],
  policy: ['kernel', 'cni', 'core'],
  sriov: ['delegates', 'ipam', 'kernel', 'cni', 'core'],
  'dpdk-native': ['delegates', 'ipam', 'kernel', 'cni', 'core'],
  delegates: ['ipam', 'kernel', 'cni', 'core'],
  ipam: ['cni', 'core'],
  kernel: ['core'],
  cni: ['core'],
  core: [],
};
const IPAM_FACE = 'ipam/index.ts';

/** A relative import as the file it names: `x` is x.ts or x/index.ts. */
function resolve(target) {
  for (const c of [`${target}.ts`, path.join(target, 'index.ts'), target]) {
    try {
      if (statSync(path.join(root, c)).isFile()) return c;
    } catch {}
  }
  return target;
}
const typeOnly = (text, spec) => new RegExp(`import\\s+type\\s+[^;]*from\\s+['"]${spec}['"]`).test(text);

const problems = [];
for (const file of walk(root)) {
  const text = readFileSync(path.join(root, file), 'utf8');
  const imports = [...text.matchAll(/(?:from\s+|require\(|import\()\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
  for (const spec of imports) {
    if (spec === 'koffi' && layer(file) !== 'kernel') problems.push(`${file}: imports koffi (only kernel/ may)`);
    if (isTest(file)) continue;
    if (layer(file) === 'core' && !spec.startsWith('.') && !spec.startsWith('node:') && !typeOnly(text, spec)) {
      problems.push(`${file}: imports ${spec} (core/ uses Node's core modules only)`);
    }
    if (!spec.startsWith('.')) continue;
    const target = resolve(path.relative(root, path.resolve(root, path.dirname(file), spec)));
    const from = layer(file);
    const to = layer(target);
    if (from === to || !(from in ALLOWED)) continue;
    if (!ALLOWED[from].includes(to)) problems.push(`${file}: imports ${target} (${from} may not depend on ${to})`);
    else if (to === 'ipam' && target !== IPAM_FACE) problems.push(`${file}: imports ${target} (reach ipam/ through ipam/index.ts)`);
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
