/**
 * One definition per fact (STYLE 24): where C or the build script must repeat a protocol constant, it is
 * compared here with the TypeScript one, so the two cannot drift apart silently.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_CONFIG_SCHEMA } from '../daemon/config';
import { DEFAULT_SOCKET_PATH, DEFAULT_STATE_DIR, NOT_READY_HEADER, PLUGIN_NAMES, ROUTES } from './protocol';

const root = join(__dirname, '../..');
const forwarder = readFileSync(join(root, 'meta-plugin/shim/forwarder.c'), 'utf8');

test('forwarder.c: the default socket, the CNI route and the not-ready header are the protocol module\'s', () => {
  expect(/#define DEFAULT_SOCKET "([^"]+)"/.exec(forwarder)?.[1]).toBe(DEFAULT_SOCKET_PATH);
  expect(/"POST (\S+) HTTP\/1\.1\\r\\n/.exec(forwarder)?.[1]).toBe(ROUTES.cni);
  const header = [...forwarder.matchAll(/strncasecmp\(line, "([^"]+):", (\d+)\)/g)].find((m) => m[1] !== 'content-length');
  expect(header?.[1]).toBe(NOT_READY_HEADER);
  expect(Number(header?.[2])).toBe(NOT_READY_HEADER.length + 1); // the compared length covers the colon
});

test('plexusd defaults its socket and state directory to the ones the shim assumes', () => {
  expect(DAEMON_CONFIG_SCHEMA.properties.socketPath.default).toBe(DEFAULT_SOCKET_PATH);
  expect(DAEMON_CONFIG_SCHEMA.properties.stateDir.default).toBe(DEFAULT_STATE_DIR);
});

test('hack/build.js links bin/ under every name the binary acts as', () => {
  const build = readFileSync(join(root, 'hack/build.js'), 'utf8');
  const aliases = /for \(const alias of \[([^\]]+)\]\)/.exec(build)?.[1]?.match(/'[^']+'/g)?.map((a) => a.slice(1, -1));
  expect(['plexus', ...(aliases ?? [])]).toEqual([...PLUGIN_NAMES]);
});
