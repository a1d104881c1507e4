import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BearerToken, loadCredentials } from './kubeconfig';

describe('API server credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pxkc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, doc: unknown) => {
    writeFileSync(join(dir, name), JSON.stringify(doc));
    return join(dir, name);
  };
  const config = (cluster: Record<string, unknown>, user: Record<string, unknown>) => ({
    'current-context': 'c', contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }], clusters: [{ name: 'k', cluster }], users: [{ name: 'u', user }],
  });

  test('a kubeconfig: server, CA data or file (relative to the kubeconfig), token, client certificate and key', () => {
    writeFileSync(join(dir, 'ca.crt'), 'CA-PEM');
    expect(loadCredentials(write('a', config({ server: 'https://k:6443', 'certificate-authority': 'ca.crt' }, { token: 't', 'client-certificate-data': Buffer.from('C').toString('base64'), 'client-key-data': Buffer.from('K').toString('base64') }))))
      .toEqual({ server: 'https://k:6443', ca: 'CA-PEM', token: 't', cert: 'C', key: 'K' });
    expect(loadCredentials(write('b', config({ server: 'https://k', 'insecure-skip-tls-verify': true }, { tokenFile: 'tok' })))).toEqual({ server: 'https://k', insecure: true, tokenFile: join(dir, 'tok') });
  });

  test.each([
    [config({ server: 'https://k' }, { exec: { command: 'aws' } }), /logs in through an exec or auth-provider plugin/],
    [config({}, {}), /cluster "k" has no server/],
    [{ 'current-context': 'x', contexts: [] }, /no context "x"/],
    [config({ server: 'https://k', 'certificate-authority': '/nonexistent/ca' }, {}), /the cluster CA: cannot read \/nonexistent\/ca/],
  ])('%#: a kubeconfig plexusd cannot use is refused naming why', (doc, message) => {
    expect(() => loadCredentials(write('bad', doc))).toThrow(message);
  });

  test('in-cluster needs KUBERNETES_SERVICE_HOST', () => {
    const saved = process.env['KUBERNETES_SERVICE_HOST'];
    delete process.env['KUBERNETES_SERVICE_HOST'];
    try {
      expect(() => loadCredentials(undefined)).toThrow(/KUBERNETES_SERVICE_HOST is not set/);
    } finally {
      if (saved !== undefined) process.env['KUBERNETES_SERVICE_HOST'] = saved;
    }
  });

  test('a token file is read again when it changes (the kubelet rotates projected tokens), or when asked after a 401', () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'one\n');
    const token = new BearerToken({ server: 'https://k', tokenFile: file });
    expect(token.get()).toBe('one');
    const later = new Date(Date.now() + 5000);
    writeFileSync(file, 'two\n');
    utimesSync(file, later, later);
    expect(token.get()).toBe('two');
    writeFileSync(file, 'three\n');
    utimesSync(file, later, later); // the same mtime as before: only a fresh read sees it
    expect(token.get()).toBe('two');
    expect(token.get(true)).toBe('three');
  });
});
