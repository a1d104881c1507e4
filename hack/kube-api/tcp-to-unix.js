#!/usr/bin/env node
// `tcp-to-unix.js PORT SOCKET`: accepts TCP on 127.0.0.1:PORT and joins each connection to the unix socket
// SOCKET. Run inside a network namespace (`ip netns exec NS node tcp-to-unix.js ...`), it lets processes there
// (plexusd, kubectl) reach an API server listening on a unix socket of the test process, since unix sockets
// cross network namespaces and loopback does not. Prints "listening" once it accepts.
'use strict';
const net = require('node:net');
const [port, socket] = process.argv.slice(2);
const server = net.createServer((c) => {
  const u = net.connect(socket);
  c.pipe(u).pipe(c);
  const end = () => (c.destroy(), u.destroy());
  c.on('error', end);
  u.on('error', end);
  c.on('close', end);
  u.on('close', end);
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
