#!/usr/bin/env node
// Builds bin/: the native forwarder bin/plexus (C), the eBPF objects, the DPDK addon, and the bundled Node
// entry points plexus-shim, plexusctl, plexusd and plexus-dataplane. The shim and plexusctl must use Node core modules only (DESIGN decision 1):
// the build fails if anything else reaches their bundles.
'use strict';
const esbuild = require('esbuild');
const { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync, rmSync, statSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { builtinModules } = require('node:module');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const core = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

const entries = [
  // The Node shim: what bin/plexus (the native forwarder) falls back to when the daemon cannot answer.
  { out: 'plexus-shim', src: 'meta-plugin/shim/main.ts', coreOnly: true },
  { out: 'plexusctl', src: 'meta-plugin/ctl/main.ts', coreOnly: true },
  // koffi is native: it stays in node_modules and is resolved from there at run time.
  { out: 'plexusd', src: 'meta-plugin/daemon/main.ts', coreOnly: false, external: ['koffi', 'etcd3'] },
  // The DPDK engine process; it loads bin/dpdk_native.node (built below) at run time.
  { out: 'plexus-dataplane', src: 'dpdk-native/engine/main.ts', coreOnly: false },
];

async function main() {
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  for (const e of entries) {
    const outfile = path.join(root, 'bin', e.out);
    const result = await esbuild.build({
      entryPoints: [path.join(root, e.src)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: e.external ?? [],
      banner: { js: '#!/usr/bin/env node' },
      metafile: true,
      logLevel: 'warning',
      legalComments: 'none',
    });
    if (e.coreOnly) {
      const imports = Object.values(result.metafile.inputs).flatMap((i) => i.imports.filter((x) => x.external).map((x) => x.path));
      const foreign = [...new Set(imports)].filter((p) => !core.has(p));
      const inputs = Object.keys(result.metafile.inputs).filter((p) => p.includes('node_modules'));
      if (foreign.length || inputs.length) {
        throw new Error(`${e.out} must use Node core modules only; found ${[...foreign, ...inputs].join(', ')}`);
      }
    }
    chmodSync(outfile, 0o755);
  }
  buildForwarder();
  buildBpf();
  buildAddon();
  // Names the CNI binary acts under (DESIGN "External contract").
  for (const alias of ['plexus-ipam', 'plexus-routed', 'plexus-sriov', 'plexus-dpdk']) {
    const link = path.join(root, 'bin', alias);
    rmSync(link, { force: true });
    symlinkSync('plexus', link);
  }
}

/**
 * bin/plexus: the native forwarder (meta-plugin/shim/forwarder.c), built with the system C compiler. Linked
 * statically: it is exec'd for every CNI request, and the dynamic loader alone cost 1.3 ms of its 3.7 ms here
 * (docs/decisions.md D-13). Where no static libc is installed it is linked dynamically, with a warning.
 */
function buildForwarder() {
  const cc = process.env.CC || 'cc';
  const out = path.join(root, 'bin/plexus');
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, path.join(root, 'meta-plugin/shim/forwarder.c')];
  if (spawnSync(cc, ['-static', ...args], { stdio: ['ignore', 'ignore', 'pipe'] }).status === 0) return;
  console.warn('build: no static libc (libc6-dev): bin/plexus is linked dynamically, about 1 ms slower per CNI request');
  const r = spawnSync(cc, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cc} failed to build bin/plexus`);
}

/** bin/bpf/*.o: the datapath's eBPF programs (DESIGN 5), compiled by clang; the daemon loads them from there. */
function buildBpf() {
  const outDir = path.join(root, 'bin/bpf');
  mkdirSync(outDir, { recursive: true });
  const include = `/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  for (const src of ['delegates/routed/bpf/from_pod.c', 'policy/bpf/policy.c']) {
    const out = path.join(outDir, path.basename(src).replace(/\.c$/, '.o'));
    const r = spawnSync('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-I${include}`, '-c', path.join(root, src), '-o', out], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`clang failed to build ${src}`);
  }
}

/**
 * bin/dpdk_native.node: the N-API addon of the DPDK engine (dpdk-native/addon/*.c), built by node-gyp against
 * the system's DPDK (`pkg-config libdpdk`; hack/deps.sh installs it). Configured once, then rebuilt
 * incrementally by make.
 */
function buildAddon() {
  const dir = path.join(root, 'dpdk-native');
  const gyp = path.join(root, 'node_modules/.bin/node-gyp');
  const step = (args) => {
    const r = spawnSync(gyp, [...args, '--nodedir=/usr', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`node-gyp ${args[0]} failed for dpdk-native (is libdpdk-dev installed? make deps)`);
  };
  // Configured again when binding.gyp changed (a new source file), else the old Makefile builds without it.
  const makefile = path.join(dir, 'build/Makefile');
  if (!existsSync(makefile) || statSync(makefile).mtimeMs < statSync(path.join(dir, 'binding.gyp')).mtimeMs) step(['configure']);
  step(['build']);
  copyFileSync(path.join(dir, 'build/Release/dpdk_native.node'), path.join(root, 'bin/dpdk_native.node'));
}

main().catch((e) => {
  console.error(`build failed: ${e.message}`);
  process.exit(1);
});
