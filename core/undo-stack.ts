/**
 * Undo stack (STYLE 2): push an undo right after each step succeeds; on failure unwind in reverse; commit
 * when done. Rollback never depends on inspecting a reassignable error variable.
 */
export type Undo = () => Promise<void> | void;

export class UndoStack {
  private steps: { what: string; undo: Undo }[] = [];

  push(what: string, undo: Undo): void {
    this.steps.push({ what, undo });
  }

  commit(): void {
    this.steps = [];
  }

  /** Run every undo in reverse; failures do not stop the rest and are returned. */
  async unwind(): Promise<{ what: string; error: unknown }[]> {
    const failures: { what: string; error: unknown }[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.undo();
      } catch (error) {
        failures.push({ what: step.what, error });
      }
    }
    return failures;
  }
}
