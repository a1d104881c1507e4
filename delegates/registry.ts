/**
 * The one explicit registry of delegates (STYLE 3: nothing registers itself on import). Built-in types are
 * added by the daemon at start; any other `type` runs as an external binary.
 */
import type { Delegate, DelegateRegistry } from './contract';
import { BinaryDelegate, findBinary } from './exec-binary';

export class Registry implements DelegateRegistry {
  private readonly builtins = new Map<string, Delegate>();
  private readonly binaries = new Map<string, BinaryDelegate>();

  register(type: string, delegate: Delegate): this {
    this.builtins.set(type, delegate);
    return this;
  }

  forType(type: string): Delegate {
    const builtin = this.builtins.get(type);
    if (builtin) return builtin;
    let bin = this.binaries.get(type);
    if (!bin) {
      bin = new BinaryDelegate(type);
      this.binaries.set(type, bin);
    }
    return bin;
  }

  /** The built-in delegate of `type`, if one is registered (never an external binary). */
  builtin(type: string): Delegate | undefined {
    return this.builtins.get(type);
  }

  verifiesInterface(type: string): boolean {
    return this.builtins.get(type)?.verifiesInterface === true;
  }

  implicitCapabilities(type: string): readonly string[] {
    return this.builtins.get(type)?.capabilities ?? [];
  }

  available(type: string, path: string[]): boolean {
    return this.builtins.has(type) || findBinary(type, path) !== undefined;
  }
}
