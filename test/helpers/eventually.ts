/**
 * Polls `probe` every `stepMs` until it holds, for at most `ms`; then fails naming `what`. For conditions that
 * follow asynchronously (a route sync, a lease expiry, a server starting to listen): tests wait for the
 * condition, never for a fixed time.
 */
export async function eventually(what: string, probe: () => boolean | Promise<boolean>, ms = 5000, stepMs = 100): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * Retries `assertion` (which throws, e.g. with `expect`) every `stepMs` until it passes, for at most `ms`;
 * then throws its last failure, with `context()` (a log tail) appended when given.
 */
export async function expectEventually(assertion: () => Promise<void> | void, opts: { timeoutMs?: number; stepMs?: number; context?: () => string } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  for (;;) {
    try {
      await assertion();
      return;
    } catch (err) {
      if (Date.now() >= deadline) {
        if (opts.context && err instanceof Error) err.message += `\n--- context ---\n${opts.context()}`;
        throw err;
      }
    }
    await new Promise((r) => setTimeout(r, opts.stepMs ?? 200));
  }
}
