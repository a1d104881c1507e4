/**
 * Runs a test body; when it fails, the error carries `explain()`'s text (a cluster's routes, neighbours and
 * daemon logs) so a failure on CI, where the cluster is gone afterwards, still says what the kernel looked like.
 */
export async function explained(explain: () => string, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (err) {
    let state: string;
    try {
      state = explain();
    } catch (e) {
      state = `(could not collect the state: ${(e as Error).message})`;
    }
    if (err instanceof Error) err.message += `\n\n---- state at the failure ----\n${state}`;
    throw err;
  }
}
