import type { ImageServiceServer } from "../../../generated/toolplane/image/v1/image.js";
import type { Logger } from "../../runtime/src/index.js";

export function createImageServiceImplementation(_logger: Logger): Partial<ImageServiceServer> {
  return {};
}
