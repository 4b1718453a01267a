import { CoordinateUnit, type Operation, type OutputOptions } from "../../../../generated/toolplane/image/v1/image.js";
import {
  InvalidArgumentError,
  OPERATION_KINDS,
  parseOperation,
  parseOutputOptions,
  UnavailableError,
} from "../../../runtime/src/index.js";
import { referenceZoomBox, ZOOM_INVALID, ZOOM_TOOL } from "../formats/index.js";
import type { StoredImage } from "../stores.js";
import {
  optionalImageReference,
  type PreparedCall,
  type ToolContext,
  type ToolDefinition,
  type ToolOutput,
} from "./tool.js";

/** One pipeline on a stored image through the image service: its result is the tool's one image. */
async function processOnImageService(
  context: ToolContext,
  image: StoredImage,
  operations: Operation[],
  output: OutputOptions | undefined,
): Promise<ToolOutput> {
  const response = await context.call("image", (scope) =>
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
      scope,
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

export const zoomTool: ToolDefinition = {
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
  async prepare(context, args) {
    const bbox = args.bbox_2d;
    if (context.hints.referenceZoom && Array.isArray(bbox) && bbox.every((n) => typeof n === "number")) {
      return referenceCrop(context, await context.image("image_1", "session image_1"), bbox);
    }
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((n) => typeof n === "number" && Number.isFinite(n))) {
      throw new InvalidArgumentError("arguments.bbox_2d must be 4 finite numbers [x1, y1, x2, y2]");
    }
    const [left, top, right, bottom] = bbox as [number, number, number, number];
    // DeepEyes v1 boxes are pixels of the original input, never of an earlier crop.
    const image = await context.image("image_1", "session image_1");
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

const MAX_OPERATIONS = 32;

export const imageProcessTool: ToolDefinition = {
  name: "image_process",
  description: `Run a pipeline of image operations (${OPERATION_KINDS.join(", ")}) on an image and return the result.`,
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
  async prepare(context, args) {
    const image = await context.image(optionalImageReference(args), "arguments.image");
    const raw = args.operations;
    if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_OPERATIONS) {
      throw new InvalidArgumentError(`arguments.operations must be an array of 1..${MAX_OPERATIONS} operations`);
    }
    const operations = raw.map((item, index) => parseOperation(item, `arguments.operations[${index}]`));
    const output = args.output === undefined ? undefined : parseOutputOptions(args.output, "arguments.output");
    return {
      inputImages: [image.sha256],
      run: () => processOnImageService(context, image, operations, output),
    };
  },
};
