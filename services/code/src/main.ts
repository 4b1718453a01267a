import { CodeServiceService } from "../../../generated/toolplane/code/v1/code.js";
import { baseConfigShape, createLogger, loadConfig, port, runMain, startGrpcServer } from "../../runtime/src/index.js";
import { createCodeServiceImplementation } from "./server.js";

runMain("toolplane-code", async () => {
  const config = loadConfig({ ...baseConfigShape, TOOLPLANE_GRPC_PORT: port(50053) });
  const logger = createLogger("code", config.TOOLPLANE_LOG_LEVEL);
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.code.v1.CodeService",
        definition: CodeServiceService,
        implementation: createCodeServiceImplementation(logger),
      },
    ],
    protoFiles: ["toolplane/code/v1/code.proto"],
    logger,
  });
  return { logger, stoppable: { stop: () => server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS) } };
});
