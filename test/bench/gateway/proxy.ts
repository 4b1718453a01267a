/**
 * A bare gRPC pass-through for SearchService.Search, built from the same runtime
 * pieces as the gateway: startGrpcServer and createClient (so the same server and
 * channel options), the unary() wrapper and invoke (so the same cancellation and
 * deadline handling). It does nothing else, so it is the floor any gateway in Node
 * pays for one extra grpc-js hop; the gateway bench runs it as a second baseline,
 * and any option the runtime sets applies to both.
 *
 *   node dist/test/bench/gateway/proxy.js <search host:port>
 */
import {
  type SearchRequest,
  SearchServiceClient,
  SearchServiceService,
} from "../../../generated/toolplane/search/v1/search.js";
import {
  createClient,
  createLogger,
  invoke,
  runMain,
  startGrpcServer,
  unary,
} from "../../../services/runtime/src/index.js";

runMain("bench-proxy", async () => {
  const upstreamAddress = process.argv[2];
  if (!upstreamAddress) throw new Error("usage: proxy.js <search host:port>");
  const logger = createLogger("bench-proxy", "info");
  const upstream = createClient(SearchServiceClient, upstreamAddress);
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    services: [
      {
        name: "toolplane.search.v1.SearchService",
        definition: SearchServiceService,
        implementation: {
          search: unary("Search", logger, (request: SearchRequest, call) =>
            invoke(upstream, upstream.search, request, call.scope),
          ),
        },
      },
    ],
    protoFiles: ["toolplane/search/v1/search.proto"],
    logger,
  });
  return { logger, stoppable: { stop: () => server.shutdown(1000).then(() => upstream.close()) } };
});
