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
import type { ImagePipeline } from "./pipeline.js";
import type { InputInfo } from "./raster.js";

/** The service takes bytes only: sha256 references are the gateway's to resolve. */
function imageData(image: Image | undefined): Buffer {
  if (image?.sha256) {
    throw new InvalidArgumentError(
      "image.sha256 references are resolved by the gateway; send image.data to this service",
    );
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
    process: unary<ProcessRequest, ProcessResponse>("Process", logger, async (request, context) => {
      const result = await pipeline.process(imageData(request.image), request.operations, request.output, {
        signal: context.signal,
        deadlineMs: context.deadlineMs,
      });
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
