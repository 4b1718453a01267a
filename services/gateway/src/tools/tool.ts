import { type CallScope, InvalidArgumentError, isSha256, type ToolplaneError } from "../../../runtime/src/index.js";
import type { BackendName } from "../admission.js";
import type { Backends } from "../backends.js";
import type { CallHints } from "../formats/index.js";
import type { CodeLanguage, CodeSessionHandle, TrajectorySession } from "../sessions.js";
import type { MaybePromise, StoredImage } from "../stores.js";

/**
 * What a tool is (its definition, the context it runs in, its output) and the
 * argument helpers tools share. A tool is one module exporting a ToolDefinition,
 * listed once in ../tools.ts.
 */

/** What a tool's code may use while it runs one call. */
export interface ToolContext {
  session: TrajectorySession;
  backends: Backends;
  /** The call's deadline (always set here: the gateway gives every call one) and its cancellation. */
  scope: CallScope & { readonly deadlineMs: number };
  /** How the model format wants the call run (Step); empty for Execute. */
  hints: CallHints;
  /** Resolves "image_1".."image_n" (the session's inputs) or a sha256 in the store. */
  image(reference: string, field: string): Promise<StoredImage>;
  /** Runs one backend request under admission control, with the call's deadline and cancellation. */
  call<T>(backend: BackendName, request: (scope: CallScope) => Promise<T>): Promise<T>;
  /** The trajectory's code session for the language, created (with the input images bound) on first use. */
  codeSession(language: CodeLanguage): Promise<CodeSessionHandle>;
  /** Forgets a code session the code service no longer knows. */
  dropCodeSession(language: CodeLanguage): void;
  /**
   * Runs `work` after the earlier calls of the trajectory's code session for the language
   * (one cell at a time, in order), waiting without holding an admission slot.
   */
  inCodeSessionOrder<T>(language: CodeLanguage, work: () => Promise<T>): Promise<T>;
}

/** A tool's raw result, before the gateway post-processes and caps its images. */
export interface ToolOutput {
  /** Encoded images in the order their placeholders appear. */
  images: Buffer[];
  /** Observation text when the first `shown` images are shown to the model. */
  render(shown: number): string;
  /** Structured output for the caller (ToolResult.output_json). */
  output: unknown;
  /** The model's code failed but produced an observation (a traceback in stderr). */
  failure?: { code: string; message: string };
}

/** A validated call, ready to run (or to be served from a recording). */
export interface PreparedCall {
  /** sha256 of the images the call consumes, in order (events and record keys). */
  inputImages: string[];
  /** State the result depends on besides the arguments (earlier code cells), for record keys. */
  state?: string[];
  run(): Promise<ToolOutput>;
  /** Called once the call's result is final and not an infrastructure failure. */
  settled?(): void;
}

export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON schema of the arguments object. */
  parameters: Record<string, unknown>;
  backend: BackendName;
  /** Deadline when neither the request nor the RPC sets one. */
  defaultTimeoutMs: number;
  /** Part of record keys: bump when the output for the same input may change. */
  version: string;
  /** Validates the arguments (InvalidArgumentError naming the field) and binds them. */
  prepare(context: ToolContext, args: Record<string, unknown>): PreparedCall | Promise<PreparedCall>;
  /** Model-visible text of a MODEL error, when the tool's model expects a fixed one. */
  modelErrorText?(error: ToolplaneError): string;
}

/** The OpenAI function schema of a tool. */
export function openAiSchema(tool: ToolDefinition): Record<string, unknown> {
  return {
    type: "function",
    function: { name: tool.name, description: tool.description, parameters: tool.parameters },
  };
}

export function requireString(args: Record<string, unknown>, name: string): string {
  const value = args[name];
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidArgumentError(`arguments.${name} must be a non-empty string`);
  }
  return value;
}

export function optionalImageReference(args: Record<string, unknown>): string {
  const value = args.image;
  if (value === undefined) return "image_1";
  if (typeof value !== "string" || value === "") {
    throw new InvalidArgumentError('arguments.image must be "image_<n>" or the sha256 of a stored image');
  }
  return value;
}

/** Resolves an image reference against a session and the store. */
export async function resolveImageReference(
  session: TrajectorySession,
  reference: string,
  field: string,
  lookup: (sha256: string, field: string) => MaybePromise<StoredImage>,
): Promise<StoredImage> {
  const match = /^image_(\d+)$/.exec(reference);
  if (match) {
    const index = Number(match[1]);
    const sha256 = session.inputImages[index - 1];
    if (index < 1 || sha256 === undefined) {
      throw new InvalidArgumentError(
        `${field}: "${reference}" does not exist; the session has ${session.inputImages.length} input image(s) (image_1..image_${session.inputImages.length})`,
      );
    }
    return lookup(sha256, field);
  }
  if (!isSha256(reference)) {
    throw new InvalidArgumentError(`${field} must be "image_<n>" or the sha256 of a stored image, got "${reference}"`);
  }
  return lookup(reference, field);
}
