import sharp from "sharp";
import type {
  ImageServiceClient,
  Operation,
  OutputOptions,
  ProcessResponse,
} from "../../../../generated/toolplane/image/v1/image.js";
import {
  ACCEPTED_FORMATS,
  asToolplaneError,
  errorMessage,
  hasAcceptedSignature,
  invoke,
  MIME_BY_FORMAT,
  overLimit,
  parseOperation,
  parseOutputOptions,
} from "../../../runtime/src/index.js";

/**
 * Host halves of the sandbox's image helpers. They answer with a plain reply
 * object instead of throwing, so the error type (TypeError, RangeError...) the
 * model sees survives the copy back into the isolate.
 */
export type HostReply =
  | { ok: true; bytes?: Uint8Array; width?: number; height?: number; mime?: string }
  | { ok: false; type: string; message: string };

/** display() takes the system's one whitelist (ACCEPTED_FORMATS) and nothing else. */
const DISPLAY_FORMATS: Record<string, string> = Object.fromEntries(
  ACCEPTED_FORMATS.map((format) => [format, MIME_BY_FORMAT[format] as string]),
);
const DISPLAY_MIMES = new Set(Object.values(DISPLAY_FORMATS));
const DISPLAY_MIME_LIST = [...DISPLAY_MIMES].join(", ");

export interface DisplayLimits {
  maxBytes: number;
  maxPixels: number;
}

/** Validates what display(bytes, mime) was given and converts it to PNG. */
export async function toDisplayPng(
  bytes: Uint8Array,
  mime: string,
  limits: DisplayLimits,
): Promise<{ png: Buffer } | { error: HostReply }> {
  const fail = (type: string, message: string) => ({ error: { ok: false as const, type, message } });
  if (bytes.length === 0) return fail("TypeError", "display(bytes, mime): bytes is empty");
  if (bytes.length > limits.maxBytes) {
    return fail("RangeError", `display(bytes, mime): ${overLimit(`bytes has ${bytes.length} bytes`, limits.maxBytes)}`);
  }
  if (mime !== "" && !DISPLAY_MIMES.has(mime)) {
    return fail(
      "TypeError",
      `display(bytes, mime): mime ${JSON.stringify(mime)} is not supported; use one of ${DISPLAY_MIME_LIST}`,
    );
  }
  // The system's one format whitelist, by the first bytes, before libvips sees them (no SVG to librsvg, no
  // AVIF/HEIF to libheif).
  if (!hasAcceptedSignature(bytes)) {
    return fail(
      "TypeError",
      `display(bytes, mime): bytes are not an image of an accepted type (${DISPLAY_MIME_LIST}) by their first bytes`,
    );
  }
  try {
    const input = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error" });
    const metadata = await input.metadata();
    const detected = DISPLAY_FORMATS[metadata.format ?? ""];
    if (detected === undefined) {
      return fail(
        "TypeError",
        `display(bytes, mime): bytes are ${metadata.format ?? "an unknown format"}; accepted are ${DISPLAY_MIME_LIST}`,
      );
    }
    if (mime !== "" && mime !== detected) {
      return fail("TypeError", `display(bytes, mime): mime is ${mime} but the bytes are ${detected}`);
    }
    // A full decode and re-encode: validates every byte and hands the model a PNG whatever came in.
    return { png: await input.rotate().png().toBuffer() };
  } catch (error) {
    return fail("TypeError", `display(bytes, mime): bytes are not a decodable image: ${errorMessage(error)}`);
  }
}

export interface ProcessArguments {
  operations: Operation[];
  output: OutputOptions;
}

/**
 * Parses the JSON the sandbox sent for image.process(image, operations, output)
 * with the same strict parser as the gateway's image_process; throws when it is not JSON.
 */
export function parseProcessArguments(operationsJson: string, outputJson: string): ProcessArguments | HostReply {
  const rawOperations = JSON.parse(operationsJson) as unknown;
  const rawOutput = JSON.parse(outputJson) as unknown;
  try {
    const list = Array.isArray(rawOperations) ? rawOperations : [rawOperations];
    const operations = list.map((raw, index) => parseOperation(raw, `operations[${index}]`));
    return { operations, output: parseOutputOptions(rawOutput, "output") };
  } catch (error) {
    return {
      ok: false,
      type: "TypeError",
      message: `image.process(image, operations, output): ${errorMessage(error)}`,
    };
  }
}

export interface ProcessCall {
  client: ImageServiceClient;
  bytes: Uint8Array;
  mime: string;
  arguments: ProcessArguments;
  deadlineMs: number;
  signal: AbortSignal;
}

/** Calls ImageService.Process; MODEL errors become an ImageProcessError for the code, others are rethrown. */
export async function processWithImageService(call: ProcessCall): Promise<HostReply> {
  let response: ProcessResponse;
  try {
    response = await invoke(
      call.client,
      call.client.process,
      {
        image: { data: Buffer.from(call.bytes), mimeType: call.mime, width: 0, height: 0 },
        operations: call.arguments.operations,
        output: call.arguments.output,
      },
      { deadlineMs: call.deadlineMs, signal: call.signal },
    );
  } catch (error) {
    const mapped = asToolplaneError(error);
    if (mapped.errorClass === "MODEL") {
      return { ok: false, type: "ImageProcessError", message: `image.process: ${mapped.message}` };
    }
    throw mapped;
  }
  const image = response.image;
  return {
    ok: true,
    bytes: new Uint8Array(image?.data ?? Buffer.alloc(0)),
    width: image?.width ?? 0,
    height: image?.height ?? 0,
    mime: image?.mimeType ?? "",
  };
}
