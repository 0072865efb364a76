/**
 * ParentReporter: how a namespace workflow keeps its parent migration workflow informed
 * (namespaceReportSignal, coalesced).
 */
import * as wf from '@temporalio/workflow';
import { namespaceReportSignal } from '../definitions';
import type { NamespaceReport, NamespaceState } from '../../core/state';

/**
 * Sends NamespaceReports to the parent migration workflow: coalesced (one signal in flight, the next
 * one carries the latest state), and not at all when there is no parent.
 */
export class ParentReporter {
  private dirty = true;
  private finished = false;
  private sending = false;
  private readonly loop: Promise<void>;

  /** `onTouch`: called at every touch() (the workflow refreshes its Temporal UI details). */
  constructor(
    private readonly st: NamespaceState,
    private readonly onTouch?: () => void,
  ) {
    const parent = wf.workflowInfo().parent;
    if (!parent) {
      this.dirty = false;
      this.loop = Promise.resolve();
      return;
    }
    const handle = wf.getExternalWorkflowHandle(parent.workflowId);
    // Non-cancellable: reports go on while the namespace rolls back after a cancellation.
    this.loop = wf.CancellationScope.nonCancellable(async () => {
      for (;;) {
        await wf.condition(() => this.dirty || this.finished);
        if (!this.dirty) return;
        this.dirty = false;
        this.sending = true;
        try {
          await handle.signal(namespaceReportSignal, this.report());
        } catch {
          // The parent is gone (terminated): nobody to report to.
        } finally {
          this.sending = false;
        }
      }
    });
  }

  private report(): NamespaceReport {
    const st = this.st;
    return {
      source: st.source,
      phase: st.phase,
      status: st.status,
      stagePassesDone: st.stagePassesDone,
      failedPVCs: st.pvcs.filter((p) => p.errors.length > 0).length,
      awaitingDecision: st.pvcs.filter((p) => p.status === 'failed').map((p) => p.name),
      pvcsSynced: st.pvcs.filter((p) => p.status === 'synced' || p.status === 'done').length,
      bytesSent: st.pvcs.reduce((n, p) => n + p.bytesSent, 0),
      ...(this.finished ? { final: st } : {}),
    };
  }

  /** Something worth reporting changed. */
  touch(): void {
    this.dirty = true;
    this.onTouch?.();
  }

  /** Waits until the latest state has been delivered (before continue-as-new). */
  async drained(): Promise<void> {
    await wf.condition(() => !this.dirty && !this.sending);
  }

  /** Sends the final report (with the whole state) and stops. */
  async finish(): Promise<void> {
    this.finished = true;
    this.dirty = true;
    await this.loop;
  }
}
