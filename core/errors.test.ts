import { ERROR_KINDS, PlexusError, context, kindForCniCode, type ErrorKind } from './errors';

// CNI spec 2.2 "Error codes": the spec's own kinds and the numbers the runtime must see for them.
const SPEC_CODES: Partial<Record<ErrorKind, number>> = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  Degraded: 51,
};

// Issue 13: every code pinned to its number, written out here and not derived from the table under test, so a
// renumbering (which runtimes and operators would see) fails. Append a row for a new kind; never edit one.
const PINNED: Record<ErrorKind, [string, number]> = {
  IncompatibleVersion: ['PLX_INCOMPATIBLE_VERSION', 1],
  UnsupportedField: ['PLX_UNSUPPORTED_FIELD', 2],
  UnknownContainer: ['PLX_UNKNOWN_CONTAINER', 3],
  InvalidEnv: ['PLX_INVALID_ENV', 4],
  IoFailure: ['PLX_IO_FAILURE', 5],
  DecodeFailure: ['PLX_DECODE_FAILURE', 6],
  InvalidConfig: ['PLX_INVALID_CONFIG', 7],
  TryAgainLater: ['PLX_TRY_AGAIN_LATER', 11],
  NotAvailable: ['PLX_NOT_AVAILABLE', 50],
  Degraded: ['PLX_DEGRADED', 51],
  NetworkNotFound: ['PLX_NETWORK_NOT_FOUND', 100],
  DelegateFailed: ['PLX_DELEGATE_FAILED', 101],
  CapabilityMissing: ['PLX_CAPABILITY_MISSING', 102],
  InterfaceConflict: ['PLX_INTERFACE_CONFLICT', 103],
  NetworkNotAllowed: ['PLX_NETWORK_NOT_ALLOWED', 104],
  DelegateTimeout: ['PLX_DELEGATE_TIMEOUT', 105],
  DaemonUnreachable: ['PLX_DAEMON_UNREACHABLE', 106],
  DeleteIncomplete: ['PLX_DELETE_INCOMPLETE', 107],
  CheckFailed: ['PLX_CHECK_FAILED', 108],
  PodMismatch: ['PLX_POD_MISMATCH', 109],
  DeviceUnavailable: ['PLX_DEVICE_UNAVAILABLE', 110],
  KernelFailure: ['PLX_KERNEL_FAILURE', 111],
  InvalidAnnotation: ['PLX_INVALID_ANNOTATION', 112],
  PoolExhausted: ['PLX_POOL_EXHAUSTED', 113],
  AddressConflict: ['PLX_ADDRESS_CONFLICT', 114],
  StoreConflict: ['PLX_STORE_CONFLICT', 115],
  Internal: ['PLX_INTERNAL', 999],
};

test('the table holds exactly the pinned kinds, codes and numbers', () => {
  expect(Object.fromEntries(Object.entries(ERROR_KINDS).map(([k, v]) => [k, [v.code, v.cni]]))).toEqual(PINNED);
});

test('the README lists every CNI code with its meaning', () => {
  const readme = require('node:fs').readFileSync(require('node:path').join(__dirname, '../README.md'), 'utf8') as string;
  const section = readme.slice(readme.indexOf('### Error codes'), readme.indexOf('### plexusctl'));
  for (const [, cni] of Object.values(PINNED)) expect(section).toMatch(new RegExp(`\\b${cni}\\b`));
});

const ENTRIES = Object.entries(ERROR_KINDS) as [ErrorKind, { code: string; cni: number }][];
const ROWS = ENTRIES.map(([kind, { code, cni }]) => ({ kind, code, cni }));

// STYLE 7: one table-driven test covers every kind.
test.each(ROWS)('$kind: stable code $code, CNI code $cni', ({ kind, code, cni }) => {
  // Stable string codes and CNI numbers are never shared (a code is never reused).
  expect(code).toMatch(/^PLX_[A-Z_]+$/);
  expect(ENTRIES.filter(([, v]) => v.code === code)).toHaveLength(1);
  expect(ENTRIES.filter(([, v]) => v.cni === cni)).toHaveLength(1);

  // CNI spec 2.2: the spec's kinds carry the spec's number; 0-99 are reserved, so ours are 100+.
  const spec = SPEC_CODES[kind];
  if (spec !== undefined) expect(cni).toBe(spec);
  else expect(cni).toBeGreaterThanOrEqual(100);

  const cause = new Error('root cause');
  const err = new PlexusError(kind, 'it broke', { cause });
  expect(err).toBeInstanceOf(Error);
  expect(err).toMatchObject({ kind, code, cniCode: cni, message: 'it broke', details: 'root cause', cause });

  // CNI spec 2.2 "Error result": {cniVersion, code, msg, details}.
  expect(err.toCni('1.1.0')).toEqual({ cniVersion: '1.1.0', code: cni, msg: 'it broke', details: 'root cause' });
  expect(new PlexusError(kind, 'no details').toCni('0.4.0')).toEqual({ cniVersion: '0.4.0', code: cni, msg: 'no details' });

  // Round trip over the wire: the same kind comes back, details kept.
  expect(kindForCniCode(cni)).toBe(kind);
  const back = PlexusError.fromCni(err.toCni('1.0.0'));
  expect(back).toMatchObject({ kind, code, cniCode: cni, message: 'it broke', details: 'root cause' });

  // context(): "failed to <verb> <object>: <cause>" keeps kind and codes (STYLE 8).
  const wrapped = context(err, 'failed to add network "a"');
  expect(wrapped).toMatchObject({ kind, code, cniCode: cni, message: 'failed to add network "a": it broke', cause: err });
});

test('fromCni: an unknown code falls back to the given kind', () => {
  expect(kindForCniCode(8)).toBeUndefined();
  expect(PlexusError.fromCni({ cniVersion: '1.0.0', code: 8, msg: 'x' }).kind).toBe('Internal');
  expect(PlexusError.fromCni({ cniVersion: '1.0.0', code: 8, msg: 'x' }, 'DelegateFailed').cniCode).toBe(101);
});

test('context turns a foreign error into an Internal error with its text', () => {
  const e = new Error('ENOENT: no such file');
  expect(context(e, 'failed to read record')).toMatchObject({
    kind: 'Internal',
    message: 'failed to read record: ENOENT: no such file',
    details: 'ENOENT: no such file',
    cause: e,
  });
});
