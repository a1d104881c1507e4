/**
 * What every benchmark's main needs around its measurements: whole-number knobs from the environment, and one
 * clean-up shared by the normal end, a failure and SIGINT/SIGTERM (every process it started killed by PID,
 * then its own steps), so an interrupted run leaves nothing behind.
 */
import { killStarted } from '../../hack/cluster';

/** A whole-number knob >= 1 from the environment (iperf3 and sockperf take whole seconds). */
export function positiveInt(name: string, dflt: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? dflt : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number >= 1, not '${raw}'`);
  return n;
}

export class BenchRun {
  /** Set by a signal: the measurements stop at their next step. */
  aborted = false;
  private cleaning: Promise<void> | undefined;
  private steps: () => Promise<void> = async () => undefined;

  constructor(private readonly say: (line: string) => void) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        this.aborted = true;
        say(`${sig}: stopping, cleaning up`);
        void this.cleanup().then(() => process.exit(130));
      });
    }
  }

  /** What the clean-up does after killing the started processes (each step tolerating the others). */
  onCleanup(steps: () => Promise<void>): void {
    this.steps = steps;
  }

  /** Runs the clean-up once; every caller gets the same promise. */
  cleanup(): Promise<void> {
    return (this.cleaning ??= (async () => {
      killStarted();
      await this.steps();
    })());
  }

  /** Ends the process once `main` settles: 0, or 1 after the clean-up when it failed; a signal exits itself. */
  finish(main: Promise<void>, message: (e: unknown) => string): void {
    main.then(
      () => {
        if (!this.aborted) process.exit(0);
      },
      (e: unknown) => {
        this.say(`failed: ${message(e)}`);
        void this.cleanup().then(() => process.exit(1));
      },
    );
  }
}
