import type { Image } from "../../../generated/toolplane/common/v1/common.js";
import { ImageDelivery, ResultStatus, type ToolResult } from "../../../generated/toolplane/gateway/v1/gateway.js";
import { type ToolplaneError, toToolError } from "../../runtime/src/index.js";
import type { Call, CallOutcome, RoundBudget } from "./call.js";
import { modelErrorText } from "./formats/index.js";
import { MAX_IMAGES_PER_ROUND, MAX_IMAGES_PER_TRAJECTORY, prepareForModel } from "./postprocess.js";
import type { TrajectorySession } from "./sessions.js";
import type { ImageStore, StoredImage } from "./stores.js";
import type { ToolDefinition, ToolOutput } from "./tools.js";

/** An image as the caller asked to receive it: a reference, or the bytes. */
export function describeImage(image: StoredImage, delivery: ImageDelivery): Image {
  const base = { mimeType: image.mimeType, width: image.width, height: image.height };
  return delivery === ImageDelivery.IMAGE_DELIVERY_REFERENCE
    ? { sha256: image.sha256, ...base }
    : { data: image.data, sha256: undefined, ...base };
}

/** What a round (one Step or Execute) may still show: the per-round cap within what is left of the trajectory's. */
export function roundBudget(session: TrajectorySession): RoundBudget {
  return { remaining: Math.max(0, Math.min(MAX_IMAGES_PER_ROUND, MAX_IMAGES_PER_TRAJECTORY - session.imagesShown)) };
}

function statusOf(error: ToolplaneError): ResultStatus {
  return error.errorClass === "MODEL" ? ResultStatus.RESULT_STATUS_MODEL_ERROR : ResultStatus.RESULT_STATUS_INFRA_ERROR;
}

/** The result of a call that failed: a MODEL failure's text is shown to the model, an infrastructure one never. */
export function failedOutcome(
  callId: string,
  name: string,
  failure: ToolplaneError,
  tool: ToolDefinition | undefined,
): CallOutcome {
  const isModel = failure.errorClass === "MODEL";
  return {
    result: {
      callId,
      name,
      text: isModel ? (tool?.modelErrorText?.(failure) ?? modelErrorText(failure.message)) : "",
      images: [],
      error: toToolError(failure),
      outputJson: "",
      timing: undefined,
      status: statusOf(failure),
    },
    failure,
    textIsError: true,
    outputImages: [],
  };
}

/**
 * Turns what a tool produced (or a recording) into the call's result: images
 * post-processed for the model, capped by the round's budget, stored and held
 * for the session, and described the way the caller asked.
 */
export class ResultRenderer {
  constructor(private readonly store: ImageStore) {}

  async output(call: Call, tool: ToolDefinition, output: ToolOutput): Promise<CallOutcome> {
    const { session, budget } = call;
    const shown = output.images.slice(0, budget.remaining);
    budget.remaining -= shown.length;
    session.imagesShown += shown.length;
    const prepared = await Promise.all(shown.map((image) => prepareForModel(image, call.request.hints?.imageResize)));
    const stored = await Promise.all(prepared.map((image) => this.keep(session, image)));
    const failure = output.failure;
    const result: ToolResult = {
      callId: call.request.callId,
      name: tool.name,
      text: output.render(stored.length),
      images: stored.map((entry) => describeImage(entry, call.request.delivery)),
      error: failure ? toToolError({ errorClass: "MODEL", code: failure.code, message: failure.message }) : undefined,
      outputJson: JSON.stringify(output.output) ?? "",
      timing: undefined,
      status: failure ? ResultStatus.RESULT_STATUS_MODEL_ERROR : ResultStatus.RESULT_STATUS_OK,
    };
    return { result, textIsError: false, outputImages: stored.map((entry) => entry.sha256) };
  }

  /** A recorded result served again: its images count against the budget as the tool's would. */
  async recorded(call: Call, recorded: ToolResult): Promise<CallOutcome> {
    const { session, budget } = call;
    budget.remaining = Math.max(0, budget.remaining - recorded.images.length);
    session.imagesShown += recorded.images.length;
    const stored = await Promise.all(
      recorded.images.map((image) =>
        this.keep(session, {
          data: Buffer.from(image.data ?? new Uint8Array()),
          mimeType: image.mimeType,
          width: image.width,
          height: image.height,
        }),
      ),
    );
    const images = stored.map((entry) => describeImage(entry, call.request.delivery));
    const result: ToolResult = { ...recorded, callId: call.request.callId, images };
    // Thrown failures are recorded without structured output; a failed cell keeps its stdout/stderr.
    const textIsError = result.status === ResultStatus.RESULT_STATUS_MODEL_ERROR && result.outputJson === "";
    return { result, textIsError, outputImages: stored.map((entry) => entry.sha256) };
  }

  /**
   * Stores the image with a reference taken in the same step (so nothing can
   * evict it in between) and keeps one reference per session per image.
   */
  private async keep(session: TrajectorySession, image: Omit<StoredImage, "sha256">): Promise<StoredImage> {
    const entry = await this.store.putProbed(image, { hold: true });
    if (session.closed || session.heldImages.has(entry.sha256)) await this.store.release(entry.sha256);
    else session.heldImages.add(entry.sha256);
    return entry;
  }
}
