import { ImageServiceService } from "../../../generated/toolplane/image/v1/image.js";
import { baseConfigShape, createLogger, loadConfig, port, runMain, startGrpcServer } from "../../runtime/src/index.js";
import { createImageServiceImplementation } from "./server.js";

runMain("toolplane-image", async () => {
  const config = loadConfig({ ...baseConfigShape, TOOLPLANE_GRPC_PORT: port(50052) });
  const logger = createLogger("image", config.TOOLPLANE_LOG_LEVEL);
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.image.v1.ImageService",
        definition: ImageServiceService,
        implementation: createImageServiceImplementation(logger),
      },
    ],
    protoFiles: ["toolplane/image/v1/image.proto"],
    logger,
  });
  return { logger, stoppable: { stop: () => server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS) } };
});
