#!/usr/bin/env node
// `make demo`: a one-node cluster in network namespaces. The node is a netns running plexusd; three pods are
// netns the demo attaches through bin/plexus exactly as a container runtime would (env + config on stdin).
// It prints what each pod got, proves reachability on every network with ping, tears everything down and
// checks nothing is left. Only addresses inside namespaces created here are ever pinged.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const root = path.resolve(__dirname, '..');
const RUN = '/run/plexus-demo';
const NODE = 'plxdemo-node';
const PODS = ['web', 'cache', 'upf'];
const SOCKET = `${RUN}/plexus.sock`;
const PLEXUS_CONF = JSON.stringify({ cniVersion: '1.1.0', name: 'plexus', type: 'plexus', socketPath: SOCKET, stateDir: `${RUN}/state` });

const step = (msg) => console.log(`\n==> ${msg}`);
const info = (msg) => console.log(`    ${msg}`);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout || '').trim()}`);
  }
  return r;
}
const inNode = (cmd, args, opts) => sh('ip', ['netns', 'exec', NODE, cmd, ...args], opts);
const podNs = (pod) => `plxdemo-${pod}`;

function cni(command, pod, containerId, extraEnv = {}) {
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/var/run/netns/${podNs(pod)}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=${containerId}`,
    ...extraEnv,
  };
  const r = sh('ip', ['netns', 'exec', NODE, path.join(root, 'bin/plexus')], { input: PLEXUS_CONF, env, allowFail: true });
  if (r.status !== 0) throw new Error(`CNI ${command} for pod ${pod} failed: ${r.stdout.trim()}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

function cleanup(daemon) {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGTERM');
  for (const ns of [NODE, ...PODS.map(podNs)]) sh('ip', ['netns', 'del', ns], { allowFail: true, stdio: 'ignore' });
  fs.rmSync(RUN, { recursive: true, force: true });
}

async function waitReady() {
  for (let i = 0; i < 100; i++) {
    const r = sh(path.join(root, 'bin/plexusctl'), ['--socket', SOCKET, 'health'], { allowFail: true });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('plexusd did not become ready');
}

function table(rows) {
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals) => vals.map((v, i) => String(v).padEnd(width[i])).join('  ');
  console.log(`    ${line(cols)}\n    ${line(width.map((w) => '-'.repeat(w)))}`);
  for (const r of rows) console.log(`    ${line(cols.map((c) => r[c]))}`);
}

async function main() {
  if (process.getuid() !== 0) throw new Error('the demo needs root (network namespaces)');
  cleanup(); // leftovers of an interrupted run
  step('Preparing a one-node cluster in network namespaces');
  for (const d of ['cni', 'manifests', 'state', 'host-local', 'bin']) fs.mkdirSync(`${RUN}/${d}`, { recursive: true });
  // Delegates find plexus-ipam in binDirs, like any IPAM plugin.
  for (const b of ['plexus', 'plexus-shim']) fs.symlinkSync(path.join(root, 'bin', b), `${RUN}/bin/${b}`);
  fs.symlinkSync('plexus', `${RUN}/bin/plexus-ipam`);
  for (const f of fs.readdirSync(path.join(root, 'examples/cni'))) fs.copyFileSync(path.join(root, 'examples/cni', f), `${RUN}/cni/${f}`);
  for (const f of fs.readdirSync(path.join(root, 'examples/manifests'))) fs.copyFileSync(path.join(root, 'examples/manifests', f), `${RUN}/manifests/${f}`);
  sh('ip', ['netns', 'add', NODE]);
  inNode('ip', ['link', 'set', 'lo', 'up']);
  // The macvlan network's parent: one end of a veth pair inside the node (no dummy links here).
  inNode('ip', ['link', 'add', 'plx-uplink', 'type', 'veth', 'peer', 'name', 'plx-uplink-p']);
  inNode('ip', ['link', 'set', 'plx-uplink', 'up']);
  inNode('ip', ['link', 'set', 'plx-uplink-p', 'up']);
  // The bridges get a fixed MAC up front: a Linux bridge otherwise takes the lowest MAC of its ports, so it
  // changes as pods join, and the bridge plugin's CHECK (v1.1.1) then fails for the pods attached earlier.
  for (const [i, br] of ['plx-storage', 'plx-sig'].entries()) {
    inNode('ip', ['link', 'add', br, 'address', `02:00:00:00:be:0${i}`, 'type', 'bridge']);
    inNode('ip', ['link', 'set', br, 'up']);
  }
  info(`node ${NODE}: lo, macvlan parent plx-uplink, bridges plx-storage and plx-sig; manifests in ${RUN}/manifests`);

  step('Starting plexusd in the node (examples/plexusd.yaml)');
  const logFile = fs.openSync(`${RUN}/plexusd.log`, 'a');
  const daemon = spawn('ip', ['netns', 'exec', NODE, process.execPath, path.join(root, 'bin/plexusd'), '--config', path.join(root, 'examples/plexusd.yaml')], {
    stdio: ['ignore', logFile, logFile],
  });
  try {
    await waitReady();
    info(`plexusd pid ${daemon.pid} ready on ${SOCKET}`);
    await runPods();
  } catch (e) {
    console.error(`\ndemo failed: ${e.message}\n--- plexusd log (last lines) ---`);
    try {
      console.error(fs.readFileSync(`${RUN}/plexusd.log`, 'utf8').split('\n').slice(-20).join('\n'));
    } catch {}
    cleanup(daemon);
    process.exit(1);
  }
  cleanup(daemon);
  console.log('\nDemo complete: every network attached, reachable, and cleaned up.');
}

async function runPods() {
  step('Creating pods and calling the CNI plugin as the runtime does (ADD)');
  const ids = {};
  for (const pod of PODS) {
    sh('ip', ['netns', 'add', podNs(pod)]);
    ids[pod] = crypto.randomBytes(32).toString('hex');
    const t0 = process.hrtime.bigint();
    const result = cni('ADD', pod, ids[pod]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    info(`${pod.padEnd(6)} ADD ok in ${ms.toFixed(0)} ms: pod IP ${result.ips.map((i) => i.address).join(', ')}`);
  }

  step('What each pod got (network-status from `plexusctl status`, cross-checked with `ip` in the pod)');
  const rows = [];
  const addrOf = {};
  for (const pod of PODS) {
    const status = JSON.parse(sh(path.join(root, 'bin/plexusctl'), ['--socket', SOCKET, 'status', `default/${pod}`]).stdout);
    const links = JSON.parse(sh('ip', ['-n', podNs(pod), '-j', 'addr'], {}).stdout);
    for (const s of status) {
      const link = links.find((l) => l.ifname === s.interface);
      if (!link) throw new Error(`${pod}: ${s.interface} in network-status but not in the pod`);
      if (s.mac && link.address !== s.mac) throw new Error(`${pod}: ${s.interface} MAC ${link.address} != status ${s.mac}`);
      rows.push({ pod, interface: s.interface, network: s.name, default: s.default ? 'yes' : '', addresses: (s.ips || []).join(','), mac: s.mac || '' });
      addrOf[`${pod}:${s.name}`] = (s.ips || [])[0];
    }
  }
  table(rows);

  step('Reachability on every network (ping between pods)');
  const checks = [
    ['web', 'cache', 'k8s-pod-network'],
    ['cache', 'upf', 'k8s-pod-network'],
    ['cache', 'upf', 'default/storage'],
    ['upf', 'cache', 'default/telco-data'],
    ['upf', 'cache', 'default/signalling'],
  ];
  for (const [from, to, net] of checks) {
    const dst = addrOf[`${to}:${net}`];
    const r = sh('ip', ['netns', 'exec', podNs(from), 'ping', '-c', '2', '-i', '0.2', '-W', '1', dst], { allowFail: true });
    const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
    info(`${from.padEnd(5)} -> ${to.padEnd(5)} ${net.padEnd(20)} ${dst.padEnd(12)} ${r.status === 0 ? `ok (avg ${rtt ? rtt[1] : '?'} ms)` : 'FAILED'}`);
    if (r.status !== 0) throw new Error(`no reachability from ${from} to ${to} on ${net}`);
  }

  step('The IPAM service: one record per pod (`plexusctl ipam pods`)');
  for (const rec of JSON.parse(sh(path.join(root, 'bin/plexusctl'), ['--socket', SOCKET, 'ipam', 'pods']).stdout)) {
    info(`${rec.namespace}/${rec.name}: ${rec.addresses.map((a) => `${a.ip} (${a.network}, ${a.ifName})`).join(', ')}`);
  }

  step('CHECK, then DEL every pod, and verify nothing is left');
  for (const pod of PODS) cni('CHECK', pod, ids[pod]);
  info('CHECK ok for every pod');
  for (const pod of PODS) cni('DEL', pod, ids[pod]);
  for (const pod of PODS) {
    const left = JSON.parse(sh('ip', ['-n', podNs(pod), '-j', 'link'], {}).stdout).filter((l) => l.ifname !== 'lo');
    if (left.length) throw new Error(`${pod}: interfaces left after DEL: ${left.map((l) => l.ifname).join(', ')}`);
  }
  const leases = fs.readdirSync(`${RUN}/host-local`).flatMap((n) => fs.readdirSync(`${RUN}/host-local/${n}`).filter((f) => /^\d/.test(f) || f.includes(':')));
  if (leases.length) throw new Error(`host-local addresses left after DEL: ${leases.join(', ')}`);
  const held = JSON.parse(sh(path.join(root, 'bin/plexusctl'), ['--socket', SOCKET, 'ipam', 'pods']).stdout);
  if (held.length) throw new Error(`plexus-ipam addresses left after DEL: ${JSON.stringify(held)}`);
  info('DEL ok: pods have only lo, every host-local and plexus-ipam address released');
}

main().catch((e) => {
  console.error(`demo failed: ${e.message}`);
  process.exit(1);
});
