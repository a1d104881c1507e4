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
