import {
  type ImageSearchRequest,
  type SearchRequest,
  type SearchResponse,
  SearchServiceService,
} from "../../generated/toolplane/search/v1/search.js";
import {
  createLogger,
  type IncomingCall,
  type RunningServer,
  startGrpcServer,
  unary,
} from "../../services/runtime/src/index.js";

export type SearchBehaviour = (request: SearchRequest, call: IncomingCall) => Promise<SearchResponse>;

/** One result titled after the query: what the fake answers unless told otherwise. */
export function searchAnswer(query: string, title = `About ${query}`): SearchResponse {
  return {
    results: [
      {
        title,
        url: "https://example.test/a",
        snippet: "A snippet.",
        date: "",
        thumbnail: undefined,
        thumbnailUrl: "",
        score: 1,
      },
    ],
    provider: "test",
    cacheStatus: 0,
    timing: undefined,
  };
}

/**
 * A real gRPC SearchService on a loopback port whose answers each test sets,
 * standing in for the search service where a test is about its caller. Counts
 * the calls and the cancellations it saw, and keeps the images it was sent.
 */
export class FakeSearch {
  behaviour: SearchBehaviour = async (request) => searchAnswer(request.query);
  cancelled = 0;
  calls = 0;
  /** Thumbnails every image search returns. */
  thumbnails: Buffer[] = [];
  imageQueries: Buffer[] = [];
  server: RunningServer | undefined;

  constructor(behaviour?: SearchBehaviour) {
    if (behaviour) this.behaviour = behaviour;
  }

  get address(): string {
    if (!this.server) throw new Error("the fake search service is not started");
    return this.server.address;
  }

  /** Starts (or restarts) on `port`; 0 picks a free one. */
  async start(port = 0): Promise<this> {
    const logger = createLogger("test-search", "silent");
    this.server = await startGrpcServer({
      host: "127.0.0.1",
      port,
      services: [
        {
          name: "toolplane.search.v1.SearchService",
          definition: SearchServiceService,
          implementation: {
            search: unary("Search", logger, (request: SearchRequest, call) => {
              this.calls += 1;
              call.scope.signal.addEventListener("abort", () => {
                this.cancelled += 1;
              });
              return this.behaviour(request, call);
            }),
            imageSearch: unary("ImageSearch", logger, async (request: ImageSearchRequest) => {
              this.imageQueries.push(Buffer.from(request.image?.data ?? new Uint8Array()));
              return {
                results: this.thumbnails.map((thumbnail, index) => ({
                  title: `Match ${index + 1}`,
                  url: `https://example.test/${index + 1}`,
                  snippet: "",
                  date: "",
                  thumbnail: { data: thumbnail, mimeType: "image/png", width: 0, height: 0 },
                  thumbnailUrl: "",
                  score: 1,
                })),
                provider: "test",
                cacheStatus: 0,
                timing: undefined,
              };
            }),
          },
        },
      ],
      protoFiles: ["toolplane/search/v1/search.proto"],
      logger,
    });
    return this;
  }

  async stop(graceMs = 100): Promise<void> {
    await this.server?.shutdown(graceMs);
  }
}
