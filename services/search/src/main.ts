import { SearchServiceService } from "../../../generated/toolplane/search/v1/search.js";
import { baseConfigShape, createLogger, loadConfig, port, runMain, startGrpcServer } from "../../runtime/src/index.js";
import { createSearchServiceImplementation } from "./server.js";

runMain("toolplane-search", async () => {
  const config = loadConfig({ ...baseConfigShape, TOOLPLANE_GRPC_PORT: port(50054) });
  const logger = createLogger("search", config.TOOLPLANE_LOG_LEVEL);
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.search.v1.SearchService",
        definition: SearchServiceService,
        implementation: createSearchServiceImplementation(logger),
      },
    ],
    protoFiles: ["toolplane/search/v1/search.proto"],
    logger,
  });
  return { logger, stoppable: { stop: () => server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS) } };
});
