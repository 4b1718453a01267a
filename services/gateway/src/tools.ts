import { createHash } from "node:crypto";
import { status } from "@grpc/grpc-js";
import type { ExecuteResponse as CodeExecuteResponse } from "../../../generated/toolplane/code/v1/code.js";
import { CoordinateUnit, Operation, OutputOptions } from "../../../generated/toolplane/image/v1/image.js";
import type { SearchResponse } from "../../../generated/toolplane/search/v1/search.js";
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  type InvokeOptions,
  NotFoundError,
  type ToolplaneError,
  UnavailableError,
} from "../../runtime/src/index.js";
import type { BackendName } from "./admission.js";
import type { Backends } from "./backends.js";
import {
  type CallHints,
  codeObservation,
  imageSearchObservation,
  referenceZoomBox,
  searchObservation,
  ZOOM_INVALID,
  ZOOM_TOOL,
} from "./formats/index.js";
import { isSha256, type StoredImage } from "./image-store.js";
import type { CodeLanguage, CodeSessionHandle, TrajectorySession } from "./sessions.js";

/** What a tool's code may use while it runs one call. */
export interface ToolContext {
  session: TrajectorySession;
  backends: Backends;
  /** Absolute deadline of the call (ms since the epoch). */
  deadlineMs: number;
  /** How the model format wants the call run (Step); empty for Execute. */
  hints: CallHints;
  /** Aborted when the caller goes away or the deadline passes. */
  signal: AbortSignal;
  /** Resolves "image_1".."image_n" (the session's inputs) or a sha256 in the store. */
  image(reference: string, field: string): StoredImage;
  /** Runs one backend request under admission control, with the call's deadline and cancellation. */
  call<T>(backend: BackendName, request: (options: InvokeOptions) => Promise<T>): Promise<T>;
  /** The trajectory's code session for the language, created (with the input images bound) on first use. */
  codeSession(language: CodeLanguage): Promise<CodeSessionHandle>;
  /** Forgets a code session the code service no longer knows. */
  dropCodeSession(language: CodeLanguage): void;
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
  prepare(context: ToolContext, args: Record<string, unknown>): PreparedCall;
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

function requireString(args: Record<string, unknown>, name: string): string {
  const value = args[name];
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidArgumentError(`arguments.${name} must be a non-empty string`);
  }
  return value;
}

function optionalImageReference(args: Record<string, unknown>): string {
  const value = args.image;
  if (value === undefined) return "image_1";
  if (typeof value !== "string" || value === "") {
    throw new InvalidArgumentError('arguments.image must be "image_<n>" or the sha256 of a stored image');
  }
  return value;
}

/** Resolves an image reference against a session and the store. */
export function resolveImageReference(
  session: TrajectorySession,
  reference: string,
  field: string,
  lookup: (sha256: string, field: string) => StoredImage,
): StoredImage {
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
    },
    failure: error ? { code: error.code || "ABORTED", message: `${error.type}: ${error.message}` } : undefined,
  };
}

function codeTool(name: string, language: CodeLanguage, description: string): ToolDefinition {
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
            const response = await context.call("code", (options) => {
              // Measured after admission and session creation: what is left is the cell's.
              const timeoutMs = codeTimeoutMs(context.deadlineMs, handle.limits?.timeoutMs);
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
                options,
              );
            });
            return codeOutput(response);
          } catch (error) {
            // The code service forgot the session (restarted, or its TTL fired): the
            // trajectory's state is gone, which is never the model's fault. Not retryable:
            // a retry would run the model's next cell against a fresh kernel; drop the sample.
            if ((error as ToolplaneError).code === status.NOT_FOUND) {
              context.dropCodeSession(language);
              const detail = (error as Error).message;
              throw new FailedPreconditionError(`code session lost (${detail}); the trajectory's state is gone`, {
                cause: error,
              });
            }
            throw error;
          }
        },
        settled() {
          context.session.codeHistory.set(language, [...history, createHash("sha256").update(code).digest("hex")]);
        },
      };
    },
  };
}

function searchHits(response: SearchResponse) {
  return response.results.map((result) => ({
    title: result.title,
    url: result.url,
    snippet: result.snippet,
    date: result.date,
  }));
}

const searchTool: ToolDefinition = {
  name: "search",
  description: "Search the web for a text query; returns the top 5 results with title, link, date and snippet.",
  parameters: {
    type: "object",
    properties: { query: { type: "string", description: "The search query." } },
    required: ["query"],
  },
  backend: "search",
  defaultTimeoutMs: 60_000,
  version: "1",
  prepare(context, args) {
    // A format mirroring its reference sends the query it was given; the search backend judges it.
    const query = context.hints.anyQuery && typeof args.query === "string" ? args.query : requireString(args, "query");
    return {
      inputImages: [],
      run: async () => {
        const response = await context.call("search", (options) =>
          context.backends.search.search(
            { query, topK: 5, provider: "", cachePolicy: 0, language: "", region: "" },
            options,
          ),
        );
        const hits = searchHits(response);
        return {
          images: [],
          render: () => searchObservation(query, hits),
          output: { provider: response.provider, results: hits },
        };
      },
    };
  },
};

const imageSearchTool: ToolDefinition = {
  name: "image_search",
  description: "Reverse image search on the trajectory's input image; returns similar images with their page titles.",
  parameters: { type: "object", properties: {}, required: [] },
  backend: "search",
  defaultTimeoutMs: 60_000,
  version: "1",
  prepare(context, args) {
    const image = context.image(optionalImageReference(args), "arguments.image");
    return {
      inputImages: [image.sha256],
      run: async () => {
        const response = await context.call("search", (options) =>
          context.backends.search.imageSearch(
            {
              image: { data: image.data, mimeType: image.mimeType, width: image.width, height: image.height },
              topK: 5,
              provider: "",
              cachePolicy: 0,
            },
            options,
          ),
        );
        // Only results with a thumbnail are shown: each entry is an <image> placeholder.
        const shown = response.results.filter((result) => result.thumbnail?.data && result.thumbnail.data.length > 0);
        return {
          images: shown.map((result) => Buffer.from(result.thumbnail?.data as Uint8Array)),
          render: (count) => imageSearchObservation(shown.slice(0, count).map((result) => result.title)),
          output: {
            provider: response.provider,
            results: response.results.map((result) => ({
              title: result.title,
              url: result.url,
              thumbnailUrl: result.thumbnailUrl,
              shown: shown.includes(result),
            })),
          },
        };
      },
    };
  },
};

/** One pipeline on a stored image through the image service: its result is the tool's one image. */
async function processOnImageService(
  context: ToolContext,
  image: StoredImage,
  operations: Operation[],
  output: OutputOptions | undefined,
): Promise<ToolOutput> {
  const response = await context.call("image", (options) =>
    context.backends.image.process(
      {
        // Both: the image backend sends the reference alone when the service likely holds the image.
        image: {
          data: image.data,
          sha256: image.sha256,
          mimeType: image.mimeType,
          width: image.width,
          height: image.height,
        },
        operations,
        output,
      },
      options,
    ),
  );
  const data = response.image?.data;
  if (!data || data.length === 0) throw new UnavailableError("image service returned no image");
  return {
    images: [Buffer.from(data)],
    render: (shown) => "<image>".repeat(shown),
    output: { width: response.image?.width ?? 0, height: response.image?.height ?? 0 },
  };
}

const zoomTool: ToolDefinition = {
  name: ZOOM_TOOL,
  description:
    "Zoom in on a specific region of an image by cropping it based on a bounding box (bbox) and an optional object label.",
  parameters: {
    type: "object",
    properties: {
      bbox_2d: {
        type: "array",
        items: { type: "number" },
        minItems: 4,
        maxItems: 4,
        description:
          "The bounding box of the region to zoom in, as [x1, y1, x2, y2], where (x1, y1) is the top-left corner and (x2, y2) is the bottom-right corner, in pixels of the original image.",
      },
      label: {
        type: "string",
        description: "The name or label of the object in the specified bounding box (optional).",
      },
    },
    required: ["bbox_2d"],
  },
  backend: "image",
  defaultTimeoutMs: 30_000,
  version: "1",
  prepare(context, args) {
    const bbox = args.bbox_2d;
    if (context.hints.referenceZoom && Array.isArray(bbox) && bbox.every((n) => typeof n === "number")) {
      return referenceCrop(context, context.image("image_1", "session image_1"), bbox);
    }
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((n) => typeof n === "number" && Number.isFinite(n))) {
      throw new InvalidArgumentError("arguments.bbox_2d must be 4 finite numbers [x1, y1, x2, y2]");
    }
    // DeepEyes v1 boxes are pixels of the original input, never of an earlier crop.
    const image = context.image("image_1", "session image_1");
    const [left, top, right, bottom] = bbox as [number, number, number, number];
    return {
      inputImages: [image.sha256],
      run: () =>
        processOnImageService(
          context,
          image,
          [
            {
              zoom: {
                box: { left, top, right, bottom, unit: CoordinateUnit.COORDINATE_UNIT_PIXELS },
                scale: 1,
                targetWidth: 0,
                targetHeight: 0,
                minShortSide: 0,
                deepeyesRules: true,
              },
            },
          ],
          undefined,
        ),
    };
  },
  modelErrorText: () => ZOOM_INVALID,
};

/**
 * DeepEyes v1's own zoom: its box check (short side > 30 px, aspect ratio <= 100) and
 * the crop as cut, no enlargement. Numbers may be NaN or infinite, as Python's are.
 */
function referenceCrop(context: ToolContext, image: StoredImage, bbox: number[]): PreparedCall {
  const box = referenceZoomBox(bbox, image.width, image.height);
  if (box === undefined) throw new InvalidArgumentError(ZOOM_INVALID);
  const [left, top, right, bottom] = box;
  return {
    inputImages: [image.sha256],
    run: () =>
      processOnImageService(
        context,
        image,
        [{ crop: { box: { left, top, right, bottom, unit: CoordinateUnit.COORDINATE_UNIT_PIXELS } } }],
        undefined,
      ),
  };
}

const OPERATION_KINDS = [
  "crop",
  "zoom",
  "rotate",
  "flip",
  "resize",
  "adjust",
  "sharpen",
  "blur",
  "normalize",
  "grayscale",
  "threshold",
  "invert",
  "annotate",
] as const;
const MAX_OPERATIONS = 32;

const imageProcessTool: ToolDefinition = {
  name: "image_process",
  description:
    "Run a pipeline of image operations (crop, zoom, rotate, flip, resize, adjust, sharpen, blur, normalize, grayscale, threshold, invert, annotate) on an image and return the result.",
  parameters: {
    type: "object",
    properties: {
      image: {
        type: "string",
        description:
          'The image to process: "image_1".."image_n" for the inputs, or the sha256 of an image returned earlier.',
      },
      operations: {
        type: "array",
        minItems: 1,
        maxItems: MAX_OPERATIONS,
        description:
          'Operations applied in order, each an object with exactly one key, e.g. {"crop": {"box": {"left": 0, "top": 0, "right": 100, "bottom": 100, "unit": "COORDINATE_UNIT_PIXELS"}}} or {"rotate": {"angleDegrees": 90}}.',
        items: { type: "object" },
      },
      output: {
        type: "object",
        description: 'Output options, e.g. {"format": "IMAGE_FORMAT_PNG"}.',
      },
    },
    required: ["operations"],
  },
  backend: "image",
  defaultTimeoutMs: 30_000,
  version: "1",
  prepare(context, args) {
    const image = context.image(optionalImageReference(args), "arguments.image");
    const raw = args.operations;
    if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_OPERATIONS) {
      throw new InvalidArgumentError(`arguments.operations must be an array of 1..${MAX_OPERATIONS} operations`);
    }
    const operations = raw.map((item, index) => {
      const keys = typeof item === "object" && item !== null && !Array.isArray(item) ? Object.keys(item) : [];
      if (keys.length !== 1 || !(OPERATION_KINDS as readonly string[]).includes(keys[0] as string)) {
        throw new InvalidArgumentError(
          `arguments.operations[${index}] must be an object with exactly one of: ${OPERATION_KINDS.join(", ")}`,
        );
      }
      return Operation.fromJSON(item);
    });
    const outputArg = args.output;
    if (outputArg !== undefined && (typeof outputArg !== "object" || outputArg === null || Array.isArray(outputArg))) {
      throw new InvalidArgumentError("arguments.output must be an object");
    }
    const output = outputArg === undefined ? undefined : OutputOptions.fromJSON(outputArg);
    return {
      inputImages: [image.sha256],
      run: () => processOnImageService(context, image, operations, output),
    };
  },
};

export const TOOLS: readonly ToolDefinition[] = [
  zoomTool,
  codeTool(
    "code",
    "python",
    "Run Python code in the trajectory's stateful kernel (variables persist between calls). The input images are loaded as PIL images image_1, image_2, ...; plt.show() returns every open matplotlib figure as an image. PIL, numpy, matplotlib, cv2 and math are available; writing files is not allowed.",
  ),
  searchTool,
  imageSearchTool,
  imageProcessTool,
  codeTool(
    "javascript",
    "javascript",
    "Run JavaScript in the trajectory's stateful sandbox (variables persist between calls). The input images are bound as image_1, image_2, ...; no network or file access.",
  ),
];

/** Tools by name. */
export class ToolRegistry {
  private readonly byName: Map<string, ToolDefinition>;

  constructor(tools: readonly ToolDefinition[] = TOOLS) {
    this.byName = new Map(tools.map((tool) => [tool.name, tool]));
  }

  get(name: string): ToolDefinition | undefined {
    return this.byName.get(name);
  }

  /** The named tools (all when `names` is empty); an unknown name is NOT_FOUND. */
  list(names: string[] = []): ToolDefinition[] {
    if (names.length === 0) return [...this.byName.values()];
    return names.map((name) => {
      const tool = this.byName.get(name);
      if (!tool) {
        throw new NotFoundError(`names: unknown tool "${name}"; known: ${[...this.byName.keys()].join(", ")}`);
      }
      return tool;
    });
  }
}
