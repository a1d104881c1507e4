/**
 * `plexusctl`: the operator CLI. Finds the daemon with `--socket PATH` (before or after the subcommand),
 * else $PLEXUS_SOCKET, else /run/plexus/plexus.sock. Core modules only, so it starts fast.
 *
 *   plexusctl status NAMESPACE/POD   print the pod's network-status JSON, exactly the annotation value
 *   plexusctl policy NAMESPACE/POD   the policies that select the pod, per network and direction, in words
 *   plexusctl observe [filters]      recent flows (allowed connections, drops), or follow them, as hubble observe does
 *   plexusctl health                 print the daemon's /healthz and /readyz answers
 *   plexusctl ipam pools|blocks|pods the IPAM service's pools (utilisation), blocks (owners) and pod records
 *   plexusctl routed                 the routed datapath's endpoints with their eBPF counters
 *   plexusctl metrics                Prometheus text: pool utilisation, allocation latency
 *   plexusctl source                 what the daemon's source loaded (the file source: each manifest file)
 */
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { type Flow, type FlowFilter, flowMatches, formatFlow } from '../../policy/flows';
import { DEFAULT_SOCKET_PATH, END_OF_BACKLOG, ROUTES, type ViewName } from '../api/protocol';

const USAGE = `usage: plexusctl [--socket PATH] <command>
commands:
  status NAMESPACE/POD   print the pod's k8s.v1.cni.cncf.io/network-status value
  policy NAMESPACE/POD   show which policies select the pod and what they allow (JSON)
  observe [options]      show recent flows: new connections allowed and packets dropped
      --last N                 the last N matching flows (default 20; with --follow, default 0)
      -f, --follow             then print new flows as they come, until interrupted
      --pod [NS/]POD           either end is this pod (--from-pod, --to-pod: the source, the destination)
      -n, --namespace NS       either end is in this namespace
      --verdict V              FORWARDED or DROPPED
      --protocol P             tcp, udp, sctp, icmpv4, icmpv6
      --port N, --to-port N    either end's port, the destination's port
      --ip ADDRESS             either end's address
      --network NAME           cluster, or a NAD's namespace/name
      -o compact|json          one line per flow (default), or JSON lines
  health                 show whether the daemon is alive and ready
  ipam pools|blocks|pods show the IPAM service's pools, blocks or pod records (JSON)
  routed                 show the routed datapath's endpoints and from_pod counters (JSON)
  metrics                print the daemon's metrics (Prometheus text)
  source                 show what the daemon's source loaded (JSON)
`;

export interface CtlOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export function parseArgs(argv: string[], env: Record<string, string | undefined>): { socket: string; rest: string[] } | string {
  const rest: string[] = [];
  let socket = env['PLEXUS_SOCKET'] || DEFAULT_SOCKET_PATH;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--socket') {
      const v = argv[++i];
      if (!v) return '--socket needs a path';
      socket = v;
    } else if (a.startsWith('--socket=')) {
      // An empty path would send node's http client to TCP localhost:80 instead.
      socket = a.slice('--socket='.length);
      if (!socket) return '--socket needs a path';
    } else if (a === '-h' || a === '--help') return '';
    else rest.push(a);
  }
  return { socket, rest };
}

function get(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 500, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface ObserveArgs {
  filter: FlowFilter;
  last?: number;
  follow: boolean;
  json: boolean;
}

/** observe's options, as hubble spells them; a string is what is wrong with them. */
export function parseObserveArgs(args: string[]): ObserveArgs | string {
  const out: ObserveArgs = { filter: {}, follow: false, json: false };
  const f = out.filter;
  const number = (flag: string, v: string | undefined, max: number): number | string => {
    const n = Number(v);
    return v !== undefined && /^\d+$/.test(v) && n <= max ? n : `${flag} needs a number up to ${max}`;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string | undefined => args[++i];
    let v: string | undefined;
    switch (a) {
      case '-f': case '--follow': out.follow = true; break;
      case '--last': { const n = number(a, value(), 1_000_000); if (typeof n === 'string') return n; out.last = n; break; }
      case '--pod': case '--from-pod': case '--to-pod': {
        v = value();
        if (!v || !/^([a-z0-9][-a-z0-9]*\/)?[a-zA-Z0-9][-a-zA-Z0-9_.]*$/.test(v)) return `${a} needs [NAMESPACE/]POD`;
        f[a === '--pod' ? 'pod' : a === '--from-pod' ? 'fromPod' : 'toPod'] = v;
        break;
      }
      case '-n': case '--namespace': v = value(); if (!v) return `${a} needs a namespace`; f.namespace = v; break;
      case '--verdict': v = value()?.toUpperCase(); if (v !== 'FORWARDED' && v !== 'DROPPED') return '--verdict is FORWARDED or DROPPED'; f.verdict = v; break;
      case '--protocol': v = value(); if (!v || !/^(tcp|udp|sctp|icmpv4|icmpv6)$/i.test(v)) return '--protocol is tcp, udp, sctp, icmpv4 or icmpv6'; f.protocol = v; break;
      case '--port': case '--to-port': { const n = number(a, value(), 65535); if (typeof n === 'string') return n; f[a === '--port' ? 'port' : 'toPort'] = n; break; }
      case '--ip': v = value(); if (!v || !/^[0-9a-fA-F.:]+$/.test(v)) return '--ip needs an address'; f.ip = v; break;
      case '--network': v = value(); if (!v) return '--network needs a name'; f.network = v; break;
      case '-o': case '--output': v = value(); if (v !== 'compact' && v !== 'json') return '-o is compact or json'; out.json = v === 'json'; break;
      default: return `observe: unknown option ${a}`;
    }
  }
  return out;
}

/** Flows from the daemon, filtered here: the last N, then (following) each new one through `write`. */
function observe(socketPath: string, o: ObserveArgs, write: (s: string) => void): Promise<CtlOutput> {
  const print = (f: Flow) => (o.json ? `${JSON.stringify(f)}\n` : `${formatFlow(f)}\n`);
  const n = o.last ?? (o.follow ? 0 : 20);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: o.follow ? `${ROUTES.flows}?follow=1` : ROUTES.flows, method: 'GET' }, (res) => {
      const backlog: Flow[] = [];
      let following = false;
      const lastN = () => (n === 0 ? '' : backlog.filter((f) => flowMatches(f, o.filter)).slice(-n).map(print).join(''));
      createInterface({ input: res }).on('line', (line) => {
        if (res.statusCode !== 200 || !line) return;
        const f = JSON.parse(line) as Flow | typeof END_OF_BACKLOG;
        if ('endOfBacklog' in f) {
          following = true;
          write(lastN());
        } else if (!following) backlog.push(f);
        else if (flowMatches(f, o.filter)) write(print(f));
      });
      const chunks: Buffer[] = [];
      if (res.statusCode !== 200) res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) resolve({ code: 1, stdout: '', stderr: `plexusctl: ${Buffer.concat(chunks).toString('utf8').trim()}\n` });
        else resolve({ code: 0, stdout: following ? '' : lastN(), stderr: '' });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export async function runCtl(argv: string[], env: Record<string, string | undefined>, write: (s: string) => void = () => undefined): Promise<CtlOutput> {
  const parsed = parseArgs(argv, env);
  if (typeof parsed === 'string') return { code: parsed ? 2 : 0, stdout: parsed ? '' : USAGE, stderr: parsed ? `plexusctl: ${parsed}\n${USAGE}` : '' };
  const [cmd, arg] = parsed.rest;
  try {
    if (cmd === 'status' || cmd === 'policy') {
      const m = /^([a-z0-9][-a-z0-9]*)\/([a-zA-Z0-9][-a-zA-Z0-9_.]*)$/.exec(arg ?? '');
      if (!m) return { code: 2, stdout: '', stderr: `plexusctl: ${cmd} needs NAMESPACE/POD\n${USAGE}` };
      const res = await get(parsed.socket, `${ROUTES[cmd]}${m[1]}/${m[2]}`);
      if (res.status === 200) return { code: 0, stdout: res.body.endsWith('\n') ? res.body : `${res.body}\n`, stderr: '' };
      return { code: 1, stdout: '', stderr: `plexusctl: ${res.body.trim()}\n` };
    }
    if (cmd === 'observe') {
      const o = parseObserveArgs(parsed.rest.slice(1));
      if (typeof o === 'string') return { code: 2, stdout: '', stderr: `plexusctl: ${o}\n${USAGE}` };
      return await observe(parsed.socket, o, write);
    }
    if (cmd === 'health') {
      const h = await get(parsed.socket, ROUTES.healthz);
      const r = await get(parsed.socket, ROUTES.readyz);
      return { code: r.status === 200 ? 0 : 1, stdout: `healthz: ${h.body.trim()}\nreadyz: ${r.body.trim()}\n`, stderr: '' };
    }
    if (cmd === 'ipam' || cmd === 'metrics' || cmd === 'routed' || cmd === 'source') {
      if (cmd === 'ipam' && !['pools', 'blocks', 'pods'].includes(arg ?? '')) {
        return { code: 2, stdout: '', stderr: `plexusctl: ipam needs pools, blocks or pods\n${USAGE}` };
      }
      const view: ViewName = cmd === 'metrics' ? 'metrics' : cmd === 'routed' ? 'v1/routed/endpoints' : cmd === 'source' ? 'v1/source' : (`v1/ipam/${arg}` as ViewName);
      const res = await get(parsed.socket, `/${view}`);
      if (res.status === 200) return { code: 0, stdout: res.body.endsWith('\n') ? res.body : `${res.body}\n`, stderr: '' };
      return { code: 1, stdout: '', stderr: `plexusctl: ${res.body.trim()}\n` };
    }
    return { code: 2, stdout: '', stderr: `plexusctl: unknown command ${cmd ?? '(none)'}\n${USAGE}` };
  } catch (e) {
    return { code: 1, stdout: '', stderr: `plexusctl: cannot reach plexusd at ${parsed.socket}: ${(e as Error).message}\n` };
  }
}

if (require.main === module) {
  runCtl(process.argv.slice(2), process.env, (s) => process.stdout.write(s)).then((out) => {
    process.stdout.write(out.stdout);
    process.stderr.write(out.stderr);
    process.exitCode = out.code;
  });
}
