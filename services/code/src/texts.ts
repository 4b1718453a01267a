/**
 * What the code service tells a model about its cells and its session, in one wording for both backends. The
 * Python kernel writes the time-limit text itself, from the one Python source (kernel.py `time_limit_message`);
 * texts.test.ts holds the two equal.
 */

/** A cell that ran past its timeout: the first words of every such message. */
export function timeLimitExceeded(timeoutMs: number): string {
  return `execution exceeded the time limit of ${timeoutMs} ms`;
}

/** A session whose variables did not survive (its interpreter or isolate ended). */
export const STATE_LOST = "the session's state was lost";

/** The note before the output of a JavaScript cell that runs in a fresh context, and why. */
export function javascriptStateLostNote(reason: string): string {
  return `[toolplane] ${reason}; the JavaScript state was lost: this cell runs in a fresh context (earlier variables are gone, input images are bound again)\n`;
}
