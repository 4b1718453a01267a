import { ToolGatewayService } from "../../../generated/toolplane/gateway/v1/gateway.js";
import { baseConfigShape, createLogger, loadConfig, port, runMain, startGrpcServer } from "../../runtime/src/index.js";
import { createToolGatewayImplementation } from "./server.js";

runMain("toolplane-gateway", async () => {
  const config = loadConfig({ ...baseConfigShape, TOOLPLANE_GRPC_PORT: port(50051) });
  const logger = createLogger("gateway", config.TOOLPLANE_LOG_LEVEL);
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.gateway.v1.ToolGateway",
        definition: ToolGatewayService,
        implementation: createToolGatewayImplementation(logger),
      },
    ],
    protoFiles: ["toolplane/gateway/v1/gateway.proto"],
    logger,
  });
  return { logger, stoppable: { stop: () => server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS) } };
});
