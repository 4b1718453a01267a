import type { Metadata, ServerDuplexStream } from "@grpc/grpc-js";
import type {
  GatewayMessage,
  ToolGatewayServer,
  WorkerMessage,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import { type IncomingCall, InvalidArgumentError, type Logger, toToolError, unary } from "../../runtime/src/index.js";
import type { Caller, ToolGateway } from "./gateway.js";

/** Metadata key naming the caller for per-client fair share; the peer address otherwise. */
export const CLIENT_ID_KEY = "toolplane-client-id";

function clientIdOf(metadata: Metadata, peer: string): string {
  const value = metadata.get(CLIENT_ID_KEY)[0];
  return typeof value === "string" && value !== "" ? value : peer;
}

function callerOf(call: IncomingCall): Caller {
  return { clientId: clientIdOf(call.metadata, call.peer), scope: call.scope };
}

export interface StreamOptions {
  /** Requests of one Connect stream running at once; beyond it the gateway stops reading the stream. */
  maxInFlight: number;
}

/** Maps the ToolGateway RPCs onto the domain object. */
export function createToolGatewayImplementation(
  gateway: ToolGateway,
  logger: Logger,
  streamOptions: StreamOptions,
): ToolGatewayServer {
  return {
    listTools: unary("ListTools", logger, async (request) => ({ tools: gateway.listTools(request.names) })),
    createSession: unary("CreateSession", logger, (request) => gateway.createSession(request)),
    closeSession: unary("CloseSession", logger, async (request) => {
      await gateway.closeSession(request.sessionId);
      return {};
    }),
    closeRollout: unary("CloseRollout", logger, async (request) => ({
      closedSessions: await gateway.closeRollout(request.rolloutId),
    })),
    putImage: unary("PutImage", logger, async (request) => ({ image: await gateway.putImage(request.data) })),
    getImage: unary("GetImage", logger, async (request) => ({ image: await gateway.getImage(request.sha256) })),
    execute: unary("Execute", logger, async (request, call) => ({
      result: await gateway.execute(request, callerOf(call)),
    })),
    executeBatch: unary("ExecuteBatch", logger, async (request, call) => ({
      results: await gateway.executeBatch(request.calls, callerOf(call)),
    })),
    step: unary("Step", logger, (request, call) => gateway.step(request, callerOf(call))),
    connect: (call) => serveStream(gateway, logger, streamOptions, call),
  };
}

async function answer(gateway: ToolGateway, message: WorkerMessage, caller: Caller): Promise<GatewayMessage> {
  const requestId = message.requestId;
  try {
    if (message.execute) return { requestId, execute: { result: await gateway.execute(message.execute, caller) } };
    if (message.executeBatch) {
      return { requestId, executeBatch: { results: await gateway.executeBatch(message.executeBatch.calls, caller) } };
    }
    if (message.step) return { requestId, step: await gateway.step(message.step, caller) };
    throw new InvalidArgumentError("request: one of execute, execute_batch, step is required", {
      errorClass: "INFRASTRUCTURE",
    });
  } catch (error) {
    return { requestId, error: toToolError(error) };
  }
}

/**
 * A rollout worker's long-lived stream. Requests run concurrently and are
 * answered as they finish, matched by request_id. Backpressure: at most
 * maxInFlight requests run per stream, and while that many run, or while the
 * client does not read its replies, the gateway stops reading the stream (HTTP/2
 * flow control then holds the client back). When the client goes away every
 * request it still has running is cancelled.
 */
function serveStream(
  gateway: ToolGateway,
  logger: Logger,
  options: StreamOptions,
  call: ServerDuplexStream<WorkerMessage, GatewayMessage>,
): void {
  const controller = new AbortController();
  const deadline = call.getDeadline();
  const deadlineMs =
    deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : undefined;
  const caller: Caller = {
    clientId: clientIdOf(call.metadata, call.getPeer()),
    scope: { deadlineMs, signal: controller.signal },
  };
  let inFlight = 0;
  let readingPaused = false;
  let writeBlocked = false;
  let inputEnded = false;
  let closed = false;

  const adjustReading = () => {
    const shouldPause = inFlight >= options.maxInFlight || writeBlocked;
    if (shouldPause && !readingPaused) {
      readingPaused = true;
      call.pause();
    } else if (!shouldPause && readingPaused) {
      readingPaused = false;
      call.resume();
    }
  };
  const finishIfDone = () => {
    if (inputEnded && inFlight === 0 && !closed) {
      closed = true;
      call.end();
    }
  };

  call.on("data", (message: WorkerMessage) => {
    inFlight += 1;
    adjustReading();
    void answer(gateway, message, caller).then((reply) => {
      inFlight -= 1;
      if (!closed && !controller.signal.aborted) {
        const accepted = call.write(reply);
        if (!accepted && !writeBlocked) {
          writeBlocked = true;
          call.once("drain", () => {
            writeBlocked = false;
            adjustReading();
          });
        }
      }
      adjustReading();
      finishIfDone();
    });
  });
  call.on("end", () => {
    inputEnded = true;
    finishIfDone();
  });
  call.on("cancelled", () => {
    closed = true;
    controller.abort(new Error("stream cancelled by the caller"));
  });
  call.on("error", (error) => {
    logger.debug({ err: error.message }, "connect stream error");
    controller.abort(error);
  });
}
