import type {
  CloseSessionRequest,
  CloseSessionResponse,
  CodeServiceServer,
  CreateSessionRequest,
  CreateSessionResponse,
  ExecuteRequest,
  ExecuteResponse,
  LoadRequest,
  LoadResponse,
  ResetSessionRequest,
  ResetSessionResponse,
} from "../../../generated/toolplane/code/v1/code.js";
import { Restored_Reason } from "../../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../../generated/toolplane/common/v1/common.js";
import { type Logger, unary } from "../../runtime/src/index.js";
import type { RestoreReason } from "./backend.js";
import { type InputImageLimits, screenReturnedImages, toInputImages } from "./images.js";
import type { SessionManager } from "./sessions.js";

const RESTORE_REASONS: Record<RestoreReason, Restored_Reason> = {
  kernel_lost: Restored_Reason.REASON_KERNEL_LOST,
  hibernated: Restored_Reason.REASON_HIBERNATED,
  moved: Restored_Reason.REASON_MOVED,
};

/** Maps the CodeService RPCs onto the session manager; every error is mapped to a status by `unary`. */
export function createCodeServiceImplementation(
  manager: SessionManager,
  imageLimits: InputImageLimits,
  logger: Logger,
  maxSessions = 0,
): CodeServiceServer {
  // Execute calls running or queued here: with open sessions, what the gateways place new sessions by.
  let inFlightCells = 0;
  return {
    createSession: unary<CreateSessionRequest, CreateSessionResponse>(
      "CreateSession",
      logger,
      async (request, call) => {
        const started = performance.now();
        const images = await toInputImages(request.images, imageLimits);
        const created = await manager.create({
          language: request.language,
          images,
          limits: request.limits ?? {},
          idleTtlSeconds: request.idleTtlSeconds,
          label: request.label,
          ...(request.seed === undefined ? {} : { seed: request.seed }),
          signal: call.scope.signal,
        });
        return {
          sessionId: created.sessionId,
          language: created.language,
          limits: created.limits,
          timing: { queueMs: created.queueMs, executeMs: created.executeMs, totalMs: performance.now() - started },
        };
      },
    ),

    execute: unary<ExecuteRequest, ExecuteResponse>("Execute", logger, async (request, call) => {
      const started = performance.now();
      inFlightCells++;
      const { outcome, queueMs, executeMs } = await manager
        .execute({
          sessionId: request.sessionId,
          code: request.code,
          timeoutMs: request.timeoutMs,
          fixIndentation: request.referenceIndentation ? "reference" : request.fixIndentation,
          signal: call.scope.signal,
          deadlineMs: call.scope.deadlineMs,
        })
        .finally(() => inFlightCells--);
      const failure = outcome.failure;
      const screened = await screenReturnedImages(outcome.images);
      return {
        stdout: outcome.stdout,
        stderr: outcome.stderr + screened.notes,
        stdoutTruncated: outcome.stdoutTruncated,
        stderrTruncated: outcome.stderrTruncated,
        result: outcome.result ?? "",
        hasResult: outcome.result !== undefined,
        images: screened.images,
        imagesTruncated: outcome.imagesTruncated,
        // A failure of the model's code is a successful RPC carrying a MODEL error: the code ran and failed.
        error: failure && {
          errorClass: ErrorClass.ERROR_CLASS_MODEL,
          code: failure.code,
          type: failure.type,
          message: failure.message,
          traceback: failure.traceback,
        },
        timing: { queueMs, executeMs, totalMs: performance.now() - started },
        restored: outcome.restored && {
          reason: RESTORE_REASONS[outcome.restored.reason],
          lostNames: outcome.restored.lostNames,
          restoreMs: outcome.restored.restoreMs,
          complete: outcome.restored.complete,
        },
      };
    }),

    resetSession: unary<ResetSessionRequest, ResetSessionResponse>("ResetSession", logger, async (request, call) => {
      await manager.reset(request.sessionId, call.scope.signal);
      return {};
    }),

    load: unary<LoadRequest, LoadResponse>("Load", logger, async () => ({
      openSessions: manager.openSessions,
      inFlightCells,
      maxSessions,
    })),

    closeSession: unary<CloseSessionRequest, CloseSessionResponse>("CloseSession", logger, async (request) => {
      await manager.close(request.sessionId);
      return {};
    }),
  };
}
