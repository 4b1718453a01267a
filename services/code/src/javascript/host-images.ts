import sharp from "sharp";
import {
  type ImageServiceClient,
  Operation,
  OutputOptions,
  type ProcessResponse,
} from "../../../../generated/toolplane/image/v1/image.js";
import { asToolplaneError, invoke } from "../../../runtime/src/index.js";

/**
 * Host halves of the sandbox's image helpers. They answer with a plain reply
 * object instead of throwing, so the error type (TypeError, RangeError...) the
 * model sees survives the copy back into the isolate.
 */
export type HostReply =
  | { ok: true; bytes?: Uint8Array; width?: number; height?: number; mime?: string }
  | { ok: false; type: string; message: string };

const DISPLAY_FORMATS: Record<string, string> = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };
const DISPLAY_MIMES = new Set(Object.values(DISPLAY_FORMATS));

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
    return fail(
      "RangeError",
      `display(bytes, mime): bytes is ${bytes.length} bytes; the maximum is ${limits.maxBytes}`,
    );
  }
  if (mime !== "" && !DISPLAY_MIMES.has(mime)) {
    return fail(
      "TypeError",
      `display(bytes, mime): mime ${JSON.stringify(mime)} is not supported; use image/png, image/jpeg or image/webp`,
    );
  }
  try {
    const input = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error" });
    const metadata = await input.metadata();
    const detected = DISPLAY_FORMATS[metadata.format ?? ""];
    if (detected === undefined) {
      return fail(
        "TypeError",
        `display(bytes, mime): bytes are ${metadata.format ?? "an unknown format"}; only PNG, JPEG and WebP are accepted`,
      );
    }
    if (mime !== "" && mime !== detected) {
      return fail("TypeError", `display(bytes, mime): mime is ${mime} but the bytes are ${detected}`);
    }
    // A full decode and re-encode: validates every byte and hands the model a PNG whatever came in.
    return { png: await input.rotate().png().toBuffer() };
  } catch (error) {
    return fail("TypeError", `display(bytes, mime): bytes are not a decodable image: ${(error as Error).message}`);
  }
}

/** Enum fields a model may write by their short name ("pixels" for COORDINATE_UNIT_PIXELS). */
const ENUM_PREFIXES: Record<string, string> = {
  unit: "COORDINATE_UNIT_",
  fit: "FIT_",
  axis: "AXIS_",
  format: "IMAGE_FORMAT_",
};

const camelCase = (key: string) => key.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());

/** snake_case keys to the proto JSON (camelCase) names and short enum names to full ones. */
function normalise(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((item) => normalise(item));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([name, inner]) => [camelCase(name), normalise(inner, camelCase(name))]),
    );
  }
  const prefix = ENUM_PREFIXES[key];
  if (prefix !== undefined && typeof value === "string") {
    const upper = value.toUpperCase();
    return upper.startsWith(prefix) ? upper : `${prefix}${upper}`;
  }
  return value;
}

/**
 * ts-proto's fromJSON ignores unknown fields and maps unknown enum names to -1:
 * both would silently do something other than what the model asked, so both
 * are rejected here with the path of the offending field.
 */
function checkParsed(input: unknown, parsed: unknown, path: string): string | undefined {
  if (parsed === -1) return `${path} has an unknown value ${JSON.stringify(input)}`;
  if (Array.isArray(input)) {
    if (!Array.isArray(parsed)) return `${path} must not be a list`;
    for (const [index, item] of input.entries()) {
      const problem = checkParsed(item, parsed[index], `${path}[${index}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  if (typeof input !== "object" || input === null) return undefined;
  if (typeof parsed !== "object" || parsed === null) return `${path} must be a number, string or boolean`;
  for (const [key, inner] of Object.entries(input)) {
    if (!(key in parsed)) {
      return `${path} has an unknown field ${JSON.stringify(key)} (known: ${Object.keys(parsed).join(", ")})`;
    }
    const problem = checkParsed(inner, (parsed as Record<string, unknown>)[key], `${path}.${key}`);
    if (problem) return problem;
  }
  return undefined;
}

export interface ProcessArguments {
  operations: Operation[];
  output: OutputOptions;
}

/** Parses the JSON the sandbox sent for image.process(image, operations, output). */
export function parseProcessArguments(operationsJson: string, outputJson: string): ProcessArguments | HostReply {
  const fail = (message: string): HostReply => ({
    ok: false,
    type: "TypeError",
    message: `image.process(image, operations, output): ${message}`,
  });
  const rawOperations = normalise(JSON.parse(operationsJson) as unknown);
  const list = Array.isArray(rawOperations) ? rawOperations : [rawOperations];
  const operations: Operation[] = [];
  for (const [index, raw] of list.entries()) {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      return fail(`operations[${index}] must be an object such as {crop: {box: {left, top, right, bottom}}}`);
    }
    const names = Object.keys(raw);
    if (names.length !== 1) {
      return fail(`operations[${index}] must name exactly one operation, got ${names.length} (${names.join(", ")})`);
    }
    const parsed = Operation.fromJSON(raw);
    const problem = checkParsed(raw, parsed, `operations[${index}]`);
    if (problem) return fail(problem);
    operations.push(parsed);
  }
  const rawOutput = normalise(JSON.parse(outputJson) as unknown);
  const output = OutputOptions.fromJSON(rawOutput);
  const problem = checkParsed(rawOutput, output, "output");
  if (problem) return fail(problem);
  return { operations, output };
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
