/**
 * An in-memory DelegateRegistry for unit tests of the code above the delegates (conflist, runner): every
 * call is recorded (type, command, a copy of the stdin config, env), and each plugin type's behaviour is a
 * plain function. By default ADD prints a small 1.1.0 result naming the plugin type, VERSION answers every
 * version Plexus speaks, and everything else prints nothing.
 */
import pino from 'pino';
import type { Delegate, DelegateCommand, DelegateEnv, DelegateRegistry, PluginCall } from '../../delegates/contract';
import { SUPPORTED_VERSIONS } from '../../cni/version';

export const silentLog = pino({ level: 'silent' });

export interface RecordedCall {
  type: string;
  command: DelegateCommand;
  config: Record<string, unknown>;
  env: DelegateEnv;
}

export type Behaviour = (call: PluginCall, type: string) => unknown;

export function defaultBehaviour(call: PluginCall, type: string): unknown {
  if (call.command === 'VERSION') return { cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] };
  if (call.command !== 'ADD') return undefined;
  return {
    cniVersion: call.config['cniVersion'],
    interfaces: [{ name: call.env.ifName, sandbox: call.env.netns }],
    ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
    dns: { nameservers: [`dns-of-${type}`] },
  };
}

export class FakeRegistry implements DelegateRegistry {
  readonly calls: RecordedCall[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly missing = new Set<string>();

  /** Set how plugin `type` behaves; return or throw from `behaviour` as the delegate would. */
  on(type: string, behaviour: Behaviour): this {
    this.behaviours.set(type, behaviour);
    return this;
  }

  /** Make `available(type)` false, as if the binary were not in the path. */
  remove(type: string): this {
    this.missing.add(type);
    return this;
  }

  forType(type: string): Delegate {
    return {
      exec: async (call: PluginCall) => {
        this.calls.push({ type, command: call.command, config: structuredClone(call.config), env: call.env });
        return (this.behaviours.get(type) ?? defaultBehaviour)(call, type);
      },
    };
  }

  available(type: string): boolean {
    return !this.missing.has(type);
  }

  /** `TYPE COMMAND` of every call so far, for order assertions. */
  trace(): string[] {
    return this.calls.map((c) => `${c.type} ${c.command}`);
  }
}
