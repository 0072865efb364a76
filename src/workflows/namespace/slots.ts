/**
 * Slots: the counting semaphore that bounds how many PVC syncs a namespace workflow runs at once.
 */
import * as wf from '@temporalio/workflow';

/** A counting semaphore for workflow code: FIFO, deterministic, and cancellable (built on condition()). */
export class Slots {
  /** `free`: how many holders at once (≥ 1). */
  constructor(private free: number) {}
  /** Waits for a free slot and takes it (in the order of the calls). */
  async acquire(): Promise<void> {
    // The slot is taken inside the predicate: every blocked condition is evaluated in one pass, so
    // "check now, decrement after the await" would let several waiters through one free slot.
    await wf.condition(() => {
      if (this.free === 0) return false;
      this.free--;
      return true;
    });
  }
  /** Gives back a slot taken by acquire(). */
  release(): void {
    this.free++;
  }
}
