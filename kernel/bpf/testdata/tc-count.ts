/**
 * The TypeScript side of the test program tc_count.c: its map codecs (mirroring tc_count.h, parity-tested),
 * its verdict numbers, and a build step that compiles it with clang into a directory the caller owns (the
 * compiled object is never committed).
 */
import { execFileSync } from 'node:child_process';
import { arch } from 'node:os';
import { join } from 'node:path';
import { structCodec, u32, u64, ipv4 } from '../codec';

export const SOURCE = join(__dirname, 'tc_count.c');
export const PROGRAM = 'tc_count';
export const MAPS = { protoStats: 'proto_stats', denyV4: 'deny_v4', verdicts: 'verdicts' } as const;

/** enum tc_count_verdict: indexes the verdicts map; never renumbered. */
export const VERDICT = { PASS: 0, DROP_DENIED: 1, NOT_IP: 2, MALFORMED: 3 } as const;
export const VERDICTS = 4;
export const PROTOS = 256;

export const ProtoStats = structCodec('struct proto_stats', 16, { packets: [u64, 0], bytes: [u64, 8] });
export const DenyKey = structCodec('struct deny_key', 4, { addr: [ipv4, 0] });
export const DenyValue = structCodec('struct deny_value', 16, { drops: [u64, 0], last_proto: [u32, 8] });

/** Every codec that mirrors a struct of tc_count.h, for the parity test. */
export const STRUCTS = [ProtoStats, DenyKey, DenyValue];

/** The multiarch include directory Debian keeps <asm/types.h> in, which -target bpf does not search. */
function multiarchInclude(): string {
  return arch() === 'arm64' ? '/usr/include/aarch64-linux-gnu' : '/usr/include/x86_64-linux-gnu';
}

/** clang -O2 -g -target bpf: one C file to one BPF object. Throws with clang's messages. */
export function compileBpf(source: string, out: string): string {
  try {
    execFileSync('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-I${multiarchInclude()}`, '-c', source, '-o', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    throw new Error(`clang ${source} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
  return out;
}

/** Compiles tc_count.c into `outDir`/tc_count.o and returns that path. */
export function buildTcCount(outDir: string): string {
  return compileBpf(SOURCE, join(outDir, 'tc_count.o'));
}
