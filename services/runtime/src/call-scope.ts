import { DeadlineExceededError, stoppedError } from "./errors.js";

/**
 * What every layer of a call hands down: until when it may run and whether its caller is still there. One
 * type for the idea in every service: the gRPC server makes it from the incoming call (IncomingCall.scope),
 * `invoke` turns it into the outgoing call's deadline and cancellation, and a type that needs more (image
 * limits, the gateway's client id) holds a `scope` beside its own fields.
 */
export interface CallScope {
  /** Absolute deadline in ms since the epoch; undefined when nobody set one. */
  readonly deadlineMs?: number;
  /** Aborted when the caller goes away or its deadline passes; the reason tells which (stoppedError). */
  readonly signal: AbortSignal;
}

const NEVER_ABORTED = new AbortController().signal;

/** A scope nobody can cancel, with the given deadline or none: background work, tools, tests. */
export function unboundedScope(deadlineMs?: number): CallScope {
  return deadlineMs === undefined ? { signal: NEVER_ABORTED } : { deadlineMs, signal: NEVER_ABORTED };
}

/**
 * Throws when the scope is over: DeadlineExceededError once its deadline has passed, else stoppedError of
 * its signal (CancelledError when the caller went away) once that aborted. `during` names the work not started.
 */
export function throwIfStopped(scope: CallScope, during: string): void {
  if (scope.deadlineMs !== undefined && Date.now() >= scope.deadlineMs) {
    throw new DeadlineExceededError(`deadline passed before ${during}`);
  }
  if (scope.signal.aborted) throw stoppedError(scope.signal, `stopped before ${during}`);
}
