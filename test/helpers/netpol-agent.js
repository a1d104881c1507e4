// The netpol truth-table agent, one per pod netns (`ip netns exec POD node netpol-agent.js 80 81`): it
// serves TCP and UDP on the given ports (both families) and probes on request, as the upstream netpol e2e's
// agnhost does. Plain JavaScript so it starts in tens of milliseconds under `ip netns exec`.
//
// stdin, one JSON object per line: {"id": 1, "timeoutMs": 1000, "targets": [{"ip": "10.0.0.5", "port": 80, "proto": "tcp"}]}
// stdout, one per request:        {"id": 1, "results": [true]}
// A TCP probe succeeds when the connection is established (SYN and SYN-ACK both passed); a UDP probe when the
// server's reply to its datagram comes back. The agent prints "ready" once every port listens.
'use strict';
const net = require('node:net');
const dgram = require('node:dgram');
const readline = require('node:readline');

const ports = process.argv.slice(2).map(Number);
let listening = 0;
const up = () => {
  if (++listening === ports.length * 2) process.stdout.write('ready\n');
};

const open = new Map(); // connections a test holds open, by key
for (const port of ports) {
  net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(d)); // echo: a held connection can prove it still carries data
  }).listen({ port, host: '::', ipv6Only: false }, up);
  const udp = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (msg, from) => udp.send(msg, from.port, from.address));
  udp.bind(port, '::', up);
}

function probeTcp(t, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.ip, port: t.port });
    const done = (ok) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

function probeUdp(t, timeoutMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(t.ip.includes(':') ? 'udp6' : 'udp4');
    // t.size pads the datagram (larger than the MTU: it crosses as fragments, and so does its echo).
    const token = `probe-${Math.random()}`.padEnd(t.size ?? 0, '.');
    const done = (ok) => {
      clearTimeout(timer);
      clearInterval(again);
      s.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('message', (m) => m.toString() === token && done(true));
    s.on('error', () => done(false));
    const send = () => s.send(token, t.port, t.ip);
    send();
    const again = setInterval(send, Math.max(50, timeoutMs / 4)); // a datagram may be lost: send again
  });
}

/** A held connection: {"id", "hold": {"ip","port","key"}} opens; {"id", "send": "key"} sends and expects the echo. */
function hold(h, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: h.ip, port: h.port });
    const timer = setTimeout(() => resolve(false), timeoutMs);
    s.on('connect', () => {
      clearTimeout(timer);
      open.set(h.key, s);
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function sendOn(key, timeoutMs) {
  const s = open.get(key);
  if (!s) return Promise.resolve(false);
  return new Promise((resolve) => {
    const token = `t${Math.random()}`;
    let got = '';
    const onData = (d) => {
      got += d.toString();
      if (got.includes(token)) finish(true);
    };
    const finish = (ok) => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('data', onData);
    s.write(token);
  });
}

/**
 * {"id", "connectFrom": {"ip","port","sport"}}: a TCP connection from local port `sport`, ended with an RST (no
 * TIME_WAIT, so the same ports can open a connection again at once); true once it was established and reset.
 */
function connectFrom(c, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: c.ip, port: c.port, localPort: c.sport });
    const timer = setTimeout(() => (s.destroy(), resolve(false)), timeoutMs);
    s.on('connect', () => {
      clearTimeout(timer);
      s.resetAndDestroy();
      s.on('close', () => resolve(true));
    });
    s.on('error', () => (clearTimeout(timer), resolve(false)));
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const req = JSON.parse(line);
  const timeoutMs = req.timeoutMs ?? 1000;
  let results;
  if (req.hold) results = [await hold(req.hold, timeoutMs)];
  else if (req.send) results = [await sendOn(req.send, timeoutMs)];
  else if (req.connectFrom) results = [await connectFrom(req.connectFrom, timeoutMs)];
  else results = await Promise.all(req.targets.map((t) => (t.proto === 'udp' ? probeUdp(t, timeoutMs) : probeTcp(t, timeoutMs))));
  process.stdout.write(`${JSON.stringify({ id: req.id, results })}\n`);
});
rl.on('close', () => process.exit(0));
