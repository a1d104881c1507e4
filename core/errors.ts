/**
 * Every failure Plexus reports, in one place (STYLE 7). Each kind has a stable string code that is never
 * reused and the CNI numeric code the runtime sees. Code branches on `kind`/class, never on message text.
 *
 * CNI codes (CNI spec 2.2): 1 incompatible version, 2 unsupported field, 3 unknown container, 4 invalid env,
 * 5 I/O failure, 6 decode failure, 7 invalid network config, 11 try again later, 50 not available,
 * 51 not available and existing containers degraded. 100+ are Plexus's own.
 */

export const ERROR_KINDS = {
  IncompatibleVersion: { code: 'PLX_INCOMPATIBLE_VERSION', cni: 1 },
  UnsupportedField: { code: 'PLX_UNSUPPORTED_FIELD', cni: 2 },
  UnknownContainer: { code: 'PLX_UNKNOWN_CONTAINER', cni: 3 },
  InvalidEnv: { code: 'PLX_INVALID_ENV', cni: 4 },
  IoFailure: { code: 'PLX_IO_FAILURE', cni: 5 },
  DecodeFailure: { code: 'PLX_DECODE_FAILURE', cni: 6 },
  InvalidConfig: { code: 'PLX_INVALID_CONFIG', cni: 7 },
  TryAgainLater: { code: 'PLX_TRY_AGAIN_LATER', cni: 11 },
  NotAvailable: { code: 'PLX_NOT_AVAILABLE', cni: 50 },
  Degraded: { code: 'PLX_DEGRADED', cni: 51 },
  // Plexus-specific (100+). Append only; never renumber.
  NetworkNotFound: { code: 'PLX_NETWORK_NOT_FOUND', cni: 100 },
  DelegateFailed: { code: 'PLX_DELEGATE_FAILED', cni: 101 },
  CapabilityMissing: { code: 'PLX_CAPABILITY_MISSING', cni: 102 },
  InterfaceConflict: { code: 'PLX_INTERFACE_CONFLICT', cni: 103 },
  NetworkNotAllowed: { code: 'PLX_NETWORK_NOT_ALLOWED', cni: 104 },
  DelegateTimeout: { code: 'PLX_DELEGATE_TIMEOUT', cni: 105 },
  DaemonUnreachable: { code: 'PLX_DAEMON_UNREACHABLE', cni: 106 },
  DeleteIncomplete: { code: 'PLX_DELETE_INCOMPLETE', cni: 107 },
  CheckFailed: { code: 'PLX_CHECK_FAILED', cni: 108 },
  PodMismatch: { code: 'PLX_POD_MISMATCH', cni: 109 },
  DeviceUnavailable: { code: 'PLX_DEVICE_UNAVAILABLE', cni: 110 },
  KernelFailure: { code: 'PLX_KERNEL_FAILURE', cni: 111 },
  InvalidAnnotation: { code: 'PLX_INVALID_ANNOTATION', cni: 112 },
  PoolExhausted: { code: 'PLX_POOL_EXHAUSTED', cni: 113 },
  AddressConflict: { code: 'PLX_ADDRESS_CONFLICT', cni: 114 },
  StoreConflict: { code: 'PLX_STORE_CONFLICT', cni: 115 },
  Internal: { code: 'PLX_INTERNAL', cni: 999 },
} as const;

export type ErrorKind = keyof typeof ERROR_KINDS;

/** The wire form of a CNI error result (CNI spec 2.2). */
export interface CniErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export class PlexusError extends Error {
  readonly kind: ErrorKind;
  /** Stable string code, e.g. PLX_NETWORK_NOT_FOUND. */
  readonly code: string;
  /** The CNI numeric code the runtime sees. */
  readonly cniCode: number;
  readonly details: string | undefined;

  /**
   * `cniCode` overrides the kind's number only to pass a delegate's own code through (a plugin built on skel
   * may answer 8, "invalid netns", which has no kind of ours).
   */
  constructor(kind: ErrorKind, message: string, opts: { cause?: unknown; details?: string; cniCode?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = `PlexusError(${kind})`;
    this.kind = kind;
    this.code = ERROR_KINDS[kind].code;
    this.cniCode = opts.cniCode ?? ERROR_KINDS[kind].cni;
    this.details = opts.details ?? causeText(opts.cause);
  }

  toCni(cniVersion: string): CniErrorResult {
    const out: CniErrorResult = { cniVersion, code: this.cniCode, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }

  /** Rebuild from a CNI error result received over the wire or from a delegate. */
  static fromCni(res: CniErrorResult, fallback: ErrorKind = 'Internal'): PlexusError {
    const kind = kindForCniCode(res.code) ?? fallback;
    return new PlexusError(kind, res.msg, res.details ? { details: res.details } : {});
  }
}

export function kindForCniCode(code: number): ErrorKind | undefined {
  for (const [kind, v] of Object.entries(ERROR_KINDS)) if (v.cni === code) return kind as ErrorKind;
  return undefined;
}

/** "failed to <verb> <object>: <cause>" wrapping that keeps the original kind and CNI code. */
export function context(err: unknown, prefix: string): PlexusError {
  if (err instanceof PlexusError) {
    return new PlexusError(err.kind, `${prefix}: ${err.message}`, { cause: err, cniCode: err.cniCode });
  }
  return new PlexusError('Internal', `${prefix}: ${errorText(err)}`, { cause: err });
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof PlexusError) return cause.details;
  return errorText(cause);
}

