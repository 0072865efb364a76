import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, RetryState, TimeoutFailure } from '@temporalio/common';
import { describeFailure, failureMessage } from '../../src/workflows/failures';

/** ChildWorkflowFailure → ActivityFailure → `inner`, as a failed PVC sync reaches the namespace workflow. */
function chain(inner: Error): Error {
  const activity = new ActivityFailure('activity failed', 'runTransfer', '1', RetryState.NON_RETRYABLE_FAILURE, 'worker', inner);
  return new ChildWorkflowFailure('default', { workflowId: 'w', runId: 'r' }, 'pvcTransferWorkflow', RetryState.NON_RETRYABLE_FAILURE, activity);
}

describe('describeFailure', () => {
  it("keeps Ferry's classification even when the classified failure wraps the library error as its cause", () => {
    const classified = ApplicationFailure.create({
      type: 'FerryNoSpace',
      message: 'runTransfer: destination PVC too small: grow it, then retry',
      nonRetryable: true,
      cause: new Error('rsync: write failed: No space left on device (28)'),
    });
    expect(describeFailure(chain(classified))).toEqual({ type: 'FerryNoSpace', message: 'runTransfer: destination PVC too small: grow it, then retry' });
    expect(failureMessage(chain(classified))).toBe('runTransfer: destination PVC too small: grow it, then retry (FerryNoSpace)');
  });

  it('falls back to the innermost cause: timeouts and foreign failures', () => {
    expect(describeFailure(chain(new TimeoutFailure('heartbeat timeout', undefined, 'HEARTBEAT' as never)))).toEqual({ type: 'Timeout:HEARTBEAT', message: 'heartbeat timeout' });
    expect(describeFailure(chain(ApplicationFailure.create({ type: 'Other', message: 'boom' })))).toEqual({ type: 'Other', message: 'boom' });
    expect(describeFailure(new Error('plain'))).toEqual({ message: 'plain' });
  });
});
