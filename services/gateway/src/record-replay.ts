import { ResultStatus, ToolResult } from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  canonicalJson,
  errorMessage,
  FailedPreconditionError,
  type Logger,
  type RecordKey,
  type ResultRecorder,
  sha256Hex,
} from "../../runtime/src/index.js";
import type { CallHints } from "./formats/index.js";
import type { ImageStore } from "./stores.js";
import type { PreparedCall, ToolDefinition } from "./tools.js";

/** Default recorder: never consulted. */
export const recorderOff: ResultRecorder = {
  mode: "off",
  lookup: async () => undefined,
  record: async () => undefined,
};

/** The record key of a call: tool, canonical arguments (with the state they depend on), input images, version. */
export function recordKey(
  tool: ToolDefinition,
  args: Record<string, unknown>,
  canonicalArguments: string,
  prepared: PreparedCall,
  hints: CallHints | undefined,
): RecordKey {
  return {
    tool: tool.name,
    // A format's hints change the result (re-indentation, resize, box rules): part of the key.
    canonicalArguments:
      prepared.state || hints ? canonicalJson({ arguments: args, state: prepared.state, hints }) : canonicalArguments,
    inputImages: prepared.inputImages,
    toolVersion: tool.version,
  };
}

/**
 * Record/replay of tool results around a ResultRecorder: recorded with image
 * bytes, so a replay needs nothing but the recording.
 */
export class RecordReplay {
  constructor(
    private readonly recorder: ResultRecorder,
    private readonly store: ImageStore,
    private readonly logger: Logger,
  ) {}

  get mode(): ResultRecorder["mode"] {
    return this.recorder.mode;
  }

  /** Records a result that is not an infrastructure failure; reports its own failures, never throws. */
  async record(key: RecordKey, result: ToolResult): Promise<void> {
    if (result.status === ResultStatus.RESULT_STATUS_INFRA_ERROR) return;
    const images = await Promise.all(
      result.images.map(async (image) => {
        const stored = image.sha256 ? await this.store.get(image.sha256) : undefined;
        return stored ? { ...image, data: stored.data, sha256: undefined } : image;
      }),
    );
    const bytes = ToolResult.encode({ ...result, callId: "", images, timing: undefined }).finish();
    try {
      await this.recorder.record(key, bytes);
    } catch (error) {
      this.logger.warn({ tool: key.tool, err: errorMessage(error) }, "could not record tool result");
    }
  }

  /** The recorded result; a miss is FAILED_PRECONDITION (INFRASTRUCTURE): the recording is incomplete. */
  async lookup(key: RecordKey): Promise<ToolResult> {
    const bytes = await this.recorder.lookup(key);
    if (!bytes) {
      throw new FailedPreconditionError(
        `replay: no recorded result for ${key.tool} with these arguments and images (digest ${sha256Hex(key.canonicalArguments).slice(0, 12)})`,
      );
    }
    return ToolResult.decode(bytes);
  }
}
