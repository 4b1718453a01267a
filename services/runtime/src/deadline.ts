/**
 * The one deadline module (as grpc-js `src/deadline.ts`): every timer built from
 * a deadline goes through here. Node's setTimeout turns a delay above 2^31-1 ms
 * into 1 ms, so a far deadline would fire at once: delays are clamped, and a
 * clamped timer re-arms until the deadline has really passed.
 */

/** Longest delay setTimeout honours. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** The earliest of the given deadlines (ms since the epoch); Infinity when none is set. */
export function minDeadline(...deadlines: (number | undefined)[]): number {
  let earliest = Number.POSITIVE_INFINITY;
  for (const deadline of deadlines) if (deadline !== undefined && deadline < earliest) earliest = deadline;
  return earliest;
}

/** Milliseconds until the deadline, within 0..MAX_TIMER_DELAY_MS: safe to hand to setTimeout. */
export function relativeTimeout(deadlineMs: number, now = Date.now()): number {
  const remaining = deadlineMs - now;
  if (!(remaining > 0)) return 0;
  return Math.min(remaining, MAX_TIMER_DELAY_MS);
}

/** Whether the deadline has passed. */
export function isPast(deadlineMs: number | undefined, now = Date.now()): boolean {
  return deadlineMs !== undefined && now >= deadlineMs;
}

/** A cancellable timer that fires once the deadline has passed, however far away it is. */
export interface DeadlineTimer {
  clear(): void;
}

/** Calls `onDeadline` when `deadlineMs` passes; an infinite deadline never fires. */
export function setDeadlineTimer(deadlineMs: number, onDeadline: () => void): DeadlineTimer {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (deadlineMs === Number.POSITIVE_INFINITY) return;
    timer = setTimeout(() => {
      if (Date.now() < deadlineMs) arm();
      else onDeadline();
    }, relativeTimeout(deadlineMs));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}

/** An AbortSignal aborted (with `reason`) when the deadline passes; `clear` drops its timer. */
export function deadlineSignal(deadlineMs: number, reason: () => unknown): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setDeadlineTimer(deadlineMs, () => controller.abort(reason()));
  return { signal: controller.signal, clear: () => timer.clear() };
}
