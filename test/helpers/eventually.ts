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
