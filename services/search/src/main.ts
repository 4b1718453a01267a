import { SearchServiceService } from "../../../generated/toolplane/search/v1/search.js";
import { createLogger, loadConfig, loadSecurityConfig, runMain, startGrpcServer } from "../../runtime/src/index.js";
import { createSearchApp } from "./app.js";
import { searchConfigShape } from "./config.js";
import { createSearchServiceImplementation } from "./server.js";

runMain("toolplane-search", async () => {
  const config = loadConfig(searchConfigShape);
  const security = loadSecurityConfig();
  const logger = createLogger("search", config.TOOLPLANE_LOG_LEVEL);
  const app = await createSearchApp(config, logger);
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.search.v1.SearchService",
        definition: SearchServiceService,
        implementation: createSearchServiceImplementation(app.engine, logger),
      },
    ],
    protoFiles: ["toolplane/search/v1/search.proto"],
    logger,
    metricsPort: config.TOOLPLANE_METRICS_PORT,
    protoDir: config.TOOLPLANE_PROTO_DIR,
    security,
  });
  return {
    logger,
    stoppable: {
      async stop() {
        await server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS);
        await app.stop();
      },
    },
  };
});
