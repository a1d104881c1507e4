/**
 * `plexusctl`: the operator CLI. Finds the daemon with `--socket PATH` (before or after the subcommand),
 * else $PLEXUS_SOCKET, else /run/plexus/plexus.sock. Core modules only, so it starts fast.
 *
 *   plexusctl status NAMESPACE/POD   print the pod's network-status JSON, exactly the annotation value
 *   plexusctl policy NAMESPACE/POD   the policies that select the pod, per network and direction, in words
 *   plexusctl health                 print the daemon's /healthz and /readyz answers
 *   plexusctl ipam pools|blocks|pods the IPAM service's pools (utilisation), blocks (owners) and pod records
 *   plexusctl routed                 the routed datapath's endpoints with their eBPF counters
 *   plexusctl metrics                Prometheus text: pool utilisation, allocation latency
 *   plexusctl source                 what the daemon's source loaded (the file source: each manifest file)
 */
import { request } from 'node:http';
import { DEFAULT_SOCKET_PATH, ROUTES, type ViewName } from '../api/protocol';

const USAGE = `usage: plexusctl [--socket PATH] <command>
commands:
  status NAMESPACE/POD   print the pod's k8s.v1.cni.cncf.io/network-status value
  policy NAMESPACE/POD   show which policies select the pod and what they allow (JSON)
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

export async function runCtl(argv: string[], env: Record<string, string | undefined>): Promise<CtlOutput> {
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
  runCtl(process.argv.slice(2), process.env).then((out) => {
    process.stdout.write(out.stdout);
    process.stderr.write(out.stderr);
    process.exitCode = out.code;
  });
}
