import { status } from "@grpc/grpc-js";
import {
  type ExecuteResponse as CodeExecuteResponse,
  Restored_Reason,
} from "../../../../generated/toolplane/code/v1/code.js";
import {
  type CallScope,
  DeadlineExceededError,
  errorMessage,
  FailedPreconditionError,
  sha256Hex,
  type ToolplaneError,
} from "../../../runtime/src/index.js";
import { codeObservation } from "../formats/index.js";
import type { CodeLanguage } from "../sessions.js";
import { requireString, type ToolDefinition, type ToolOutput } from "./tool.js";

/** What the sandbox needs beyond the cell's own time to stop it and answer (at most; 20 % of short budgets). */
const CODE_TIMEOUT_MARGIN_MS = 2000;
const CODE_TIMEOUT_MARGIN_FRACTION = 0.2;

/**
 * The sandbox's own timeout for a cell: a little under the call's deadline, so a
 * runaway cell is reported by the sandbox as the model's timeout (MODEL) rather
 * than by gRPC as a deadline (INFRASTRUCTURE). 0 keeps the session's default when
 * that is shorter (sending more than the service's maximum would be refused);
 * -1 when the deadline has passed.
 */
export function codeTimeoutMs(deadlineMs: number, sessionTimeoutMs: number | undefined, now = Date.now()): number {
  const remaining = deadlineMs - now;
  if (remaining <= 0) return -1;
  const budget = Math.floor(remaining - Math.min(CODE_TIMEOUT_MARGIN_MS, remaining * CODE_TIMEOUT_MARGIN_FRACTION));
  if (sessionTimeoutMs && budget >= sessionTimeoutMs) return 0;
  return Math.max(1, budget);
}

/**
 * The code service gets a deadline this much before the caller's, so a cell it stops at its own deadline (the
 * model's timeout, answered as MODEL) still reaches the caller through the gateway in time: without it, a
 * runaway cell's answer and the caller's deadline arrived together and the caller saw an INFRA deadline.
 */
const REPLY_RESERVE_MS = 500;
const REPLY_RESERVE_FRACTION = 0.1;

export function withReplyReserve(scope: CallScope, now = Date.now()): CallScope {
  if (scope.deadlineMs === undefined) return scope;
  const remaining = scope.deadlineMs - now;
  const reserve = Math.max(0, Math.min(REPLY_RESERVE_MS, remaining * REPLY_RESERVE_FRACTION));
  return { ...scope, deadlineMs: scope.deadlineMs - reserve };
}

const RESTORE_REASONS: Partial<Record<Restored_Reason, string>> = {
  [Restored_Reason.REASON_KERNEL_LOST]: "kernel_lost",
  [Restored_Reason.REASON_HIBERNATED]: "hibernated",
  [Restored_Reason.REASON_MOVED]: "moved",
};

function codeOutput(response: CodeExecuteResponse): ToolOutput {
  const images = response.images.flatMap((image) => (image.data ? [Buffer.from(image.data)] : []));
  const error = response.error;
  return {
    images,
    render: (shown) => codeObservation(response.stdout, response.stderr, shown),
    output: {
      stdout: response.stdout,
      stderr: response.stderr,
      stdoutTruncated: response.stdoutTruncated,
      stderrTruncated: response.stderrTruncated,
      result: response.hasResult ? response.result : undefined,
      imagesTruncated: response.imagesTruncated,
      error: error ? { code: error.code, type: error.type, message: error.message } : undefined,
      // The session's state came back from its checkpoint before this cell (its stderr's first line says so).
      restored: response.restored
        ? {
            reason: RESTORE_REASONS[response.restored.reason] ?? "unspecified",
            lostNames: response.restored.lostNames,
            restoreMs: response.restored.restoreMs,
            complete: response.restored.complete,
          }
        : undefined,
    },
    failure: error ? { code: error.code || "ABORTED", message: `${error.type}: ${error.message}` } : undefined,
  };
}

export function codeTool(name: string, language: CodeLanguage, description: string): ToolDefinition {
  return {
    name,
    description,
    parameters: {
      type: "object",
      properties: {
        code: { type: "string", description: `${language === "python" ? "Python" : "JavaScript"} source of one cell.` },
      },
      required: ["code"],
    },
    backend: "code",
    defaultTimeoutMs: 330_000,
    version: "1",
    prepare(context, args) {
      const code = requireString(args, "code");
      const history = context.session.codeHistory.get(language) ?? [];
      return {
        inputImages: [...context.session.inputImages],
        state: [...history],
        run: async () => {
          const handle = await context.codeSession(language);
          try {
            const response = await context.inCodeSessionOrder(language, () =>
              context.call("code", (scope) => {
                // Measured after admission and session creation: what is left is the cell's.
                const timeoutMs = codeTimeoutMs(context.scope.deadlineMs, handle.limits?.timeoutMs);
                if (timeoutMs < 0) {
                  throw new DeadlineExceededError(
                    "the call's deadline passed before the cell could start (waiting for admission or for the code session)",
                  );
                }
                return context.backends.code.execute(
                  {
                    sessionId: handle.id,
                    code,
                    timeoutMs,
                    fixIndentation: language === "python",
                    referenceIndentation: context.hints.referenceIndentation === true && language === "python",
                  },
                  withReplyReserve(scope),
                  // Updated in place when the session moves to another replica, so the record keeps up.
                  handle,
                );
              }),
            );
            return codeOutput(response);
          } catch (error) {
            // The code service forgot the session (restarted, or its TTL fired): the
            // trajectory's state is gone, which is never the model's fault. Not retryable:
            // a retry would run the model's next cell against a fresh kernel; drop the sample.
            if ((error as ToolplaneError).code === status.NOT_FOUND) {
              context.dropCodeSession(language);
              const detail = errorMessage(error);
              throw new FailedPreconditionError(`code session lost (${detail}); the trajectory's state is gone`, {
                cause: error,
              });
            }
            throw error;
          }
        },
        settled() {
          context.session.codeHistory.set(language, [...history, sha256Hex(code)]);
        },
      };
    },
  };
}
