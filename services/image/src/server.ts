import type { Image } from "../../../generated/toolplane/common/v1/common.js";
import type {
  GetMetadataRequest,
  GetMetadataResponse,
  ImageMetadata,
  ImageServiceServer,
  ProcessRequest,
  ProcessResponse,
} from "../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError, type Logger, unary } from "../../runtime/src/index.js";
import type { InputInfo } from "./input.js";
import { imageReferences } from "./metrics.js";
import type { ImageInput, ImagePipeline } from "./pipeline.js";
import { ImageNotHeldError } from "./raster.js";

/**
 * Process takes the bytes, or the sha256 of an image this service holds decoded (the gateway sends a reference for
 * images it has sent before, and the bytes again when told the image is not held).
 */
function imageInput(image: Image | undefined): ImageInput {
  if (image?.sha256 && !(image.data && image.data.length > 0)) return { sha256: image.sha256 };
  return imageData(image);
}

/** GetMetadata reads the header, so it takes bytes only. */
function imageData(image: Image | undefined): Buffer {
  if (image?.sha256) {
    throw new InvalidArgumentError("GetMetadata reads the image's header: send image.data, not image.sha256");
  }
  if (!image?.data || image.data.length === 0) throw new InvalidArgumentError("image.data is required");
  return Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
}

function toMetadata(info: InputInfo): ImageMetadata {
  return {
    width: info.width,
    height: info.height,
    format: info.format,
    channels: info.channels,
    hasAlpha: info.hasAlpha,
    orientation: info.orientation,
    sizeBytes: info.sizeBytes,
    pages: info.pages,
  };
}

export function createImageServiceImplementation(pipeline: ImagePipeline, logger: Logger): ImageServiceServer {
  return {
    process: unary<ProcessRequest, ProcessResponse>("Process", logger, async (request, call) => {
      const input = imageInput(request.image);
      const result = await pipeline
        .process(input, request.operations, request.output, call.scope)
        .catch((error: unknown) => {
          if (error instanceof ImageNotHeldError) imageReferences.inc({ outcome: "not_held" });
          throw error;
        });
      if (!Buffer.isBuffer(input)) imageReferences.inc({ outcome: "served" });
      return {
        image: {
          data: result.image.data,
          mimeType: result.image.mimeType,
          width: result.image.width,
          height: result.image.height,
        },
        input: toMetadata(result.input),
        timing: result.timing,
      };
    }),
    getMetadata: unary<GetMetadataRequest, GetMetadataResponse>("GetMetadata", logger, async (request) => ({
      metadata: toMetadata(await pipeline.metadata(imageData(request.image))),
    })),
  };
}
