import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { status } from "@grpc/grpc-js";
import { z } from "zod";
import {
  asToolplaneError,
  ERROR_CLASS_KEY,
  errorMessage,
  type Logger,
  overLimit,
  RETRY_AFTER_KEY,
} from "../../runtime/src/index.js";
import { joinContents } from "./corpus.js";
import type { SearchEngine } from "./search-engine.js";
import type { ProviderResult } from "./types.js";

/**
 * Search-R1's retrieval protocol over HTTP, served from toolplane's providers, so verl's search tool
 * (`retrieval_service_url: http://host:port/retrieve`) and Search-R1's trainer can use toolplane as their
 * retriever. Request and response follow search_r1/search/retrieval_server.py (PeterGriffinJin/Search-R1
 * a14dc3a4), as called by verl/tools/utils/search_r1_like_utils.py (volcengine/verl b178a3cd):
 *   POST /retrieve {"queries": [str], "topk": int | null, "return_scores": bool = false}
 *   → {"result": [[{"document": doc, "score": float}, ...] per query]}   (return_scores)
 *   → {"result": [[doc, ...] per query]}                                  (otherwise)
 * with doc = {"id", "contents": "\"Title\"\ntext", "title", "text", "url"}; clients read `contents`.
 * `?provider=<name>` picks a provider (default: the service's default); answers go through the cache.
 * A bad request is 422 with FastAPI's {"detail": [{"loc", "msg", "type"}]}, like the Python server; a
 * failure of ours is 5xx (verl retries 500/502/503/504) or 429, with the class in `toolplane-error-class`.
 */
export interface RetrieveEndpointOptions {
  host: string;
  port: number;
  /** topk when the request leaves it out (Search-R1 launches with --topk 3; verl's tool defaults to 3). */
  defaultTopK: number;
  /** TOOLPLANE_SEARCH_MAX_TOP_K: a larger topk is refused at the door, naming the field. */
  maxTopK: number;
  logger: Logger;
}

const MAX_BODY_BYTES = 1024 * 1024;
/** Queries one request may carry: each is a search, and verl puts the model's whole query_list in one request. */
export const MAX_QUERIES = 64;

const required = (what: string) => (issue: { input: unknown }) =>
  issue.input === undefined
    ? `${what} is required`
    : `${what}; got ${JSON.stringify(issue.input) ?? typeof issue.input}`;

/** The types of Search-R1's QueryRequest (pydantic); the limits are checked after, with the figures in the message. */
const requestShape = z.object(
  {
    queries: z.array(z.string({ error: "each query must be a string" }), {
      error: required("queries must be a list of strings"),
    }),
    topk: z
      .number({ error: required("topk must be an integer or null") })
      .int({ error: required("topk must be an integer or null") })
      .nullish(),
    return_scores: z.boolean({ error: required("return_scores must be true or false") }).default(false),
  },
  { error: "the body must be a JSON object {queries, topk, return_scores}" },
);

interface Detail {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

class RequestError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly detail: string | Detail[],
  ) {
    super(typeof detail === "string" ? detail : (detail[0]?.msg ?? "bad request"));
  }
}

/** Search-R1's document fields; `id` is the corpus id for documents indexed from a Search-R1 corpus. */
function toDocument(result: ProviderResult): Record<string, string> {
  const text = result.text ?? result.snippet;
  return {
    id: result.url.startsWith("corpus:") ? result.url.slice("corpus:".length) : result.url,
    contents: joinContents(result.title, text),
    title: result.title,
    text,
    url: result.url,
  };
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new RequestError(413, `request body is over ${MAX_BODY_BYTES} bytes; the limit is ${MAX_BODY_BYTES}`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (error) {
    throw new RequestError(422, [
      { loc: ["body"], msg: `JSON decode error: ${errorMessage(error)}`, type: "json_invalid" },
    ]);
  }
}

/** gRPC status of a failure → HTTP status; verl retries exactly 500/502/503/504. */
function httpStatusOf(code: status): number {
  switch (code) {
    case status.INVALID_ARGUMENT:
      return 400;
    case status.FAILED_PRECONDITION:
      return 409;
    case status.UNAUTHENTICATED:
      return 502;
    case status.RESOURCE_EXHAUSTED:
      return 429;
    case status.UNAVAILABLE:
      return 503;
    case status.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

export class RetrieveEndpoint {
  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  static async start(engine: SearchEngine, options: RetrieveEndpointOptions): Promise<RetrieveEndpoint> {
    const server = createServer((request, response) => {
      handle(engine, options, request, response).catch((error: unknown) => {
        options.logger.error({ err: error }, "retrieve endpoint failed to answer");
        if (!response.headersSent) response.writeHead(500);
        response.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => resolve());
    });
    const bound = server.address();
    const port = typeof bound === "object" && bound ? bound.port : options.port;
    const address = `${options.host}:${port}`;
    options.logger.info({ address }, "retrieve endpoint listening");
    return new RetrieveEndpoint(server, address);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

function send(response: ServerResponse, httpStatus: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  response.writeHead(httpStatus, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...headers,
  });
  response.end(payload);
}

async function handle(
  engine: SearchEngine,
  options: RetrieveEndpointOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const url = new URL(request.url ?? "/", "http://endpoint");
  if (url.pathname !== "/retrieve") return send(response, 404, { detail: "Not Found" });
  if (request.method !== "POST") return send(response, 405, { detail: "Method Not Allowed" }, { allow: "POST" });
  // A client that hangs up abandons its searches (and their provider requests).
  const abandoned = new AbortController();
  response.on("close", () => {
    if (!response.writableEnded) abandoned.abort();
  });
  try {
    const parsed = requestShape.safeParse(await readBody(request));
    if (!parsed.success)
      throw new RequestError(
        422,
        parsed.error.issues.map((issue) => ({
          loc: ["body", ...issue.path.map((part) => (typeof part === "symbol" ? String(part) : part))],
          msg: issue.message,
          type: issue.code,
        })),
      );
    const { queries, topk, return_scores: withScores } = parsed.data;
    const limits: Detail[] = [];
    if (queries.length > MAX_QUERIES)
      limits.push({
        loc: ["body", "queries"],
        msg: overLimit(`queries has ${queries.length} queries`, MAX_QUERIES),
        type: "too_long",
      });
    if (topk && (topk < 0 || topk > options.maxTopK))
      limits.push({
        loc: ["body", "topk"],
        msg: `topk must be between 1 and ${options.maxTopK} (null or 0 means ${options.defaultTopK}); got ${topk}`,
        type: topk < 0 ? "greater_than_equal" : "less_than_equal",
      });
    if (limits.length > 0) throw new RequestError(422, limits);
    const topK = topk || options.defaultTopK;
    const provider = url.searchParams.get("provider") ?? "";
    const answers = await Promise.all(
      queries.map((query, index) =>
        engine
          .search(
            { query, topK, provider, cachePolicy: "default", language: "", region: "" },
            { signal: abandoned.signal, deadlineMs: undefined },
          )
          .catch((error: unknown) => {
            const failure = asToolplaneError(error);
            // The query came from the model: its fault is the model's to see, like FastAPI's validation errors.
            if (failure.errorClass === "MODEL")
              throw new RequestError(422, [
                { loc: ["body", "queries", index], msg: failure.message, type: "value_error" },
              ]);
            throw failure;
          }),
      ),
    );
    send(response, 200, {
      result: answers.map((answer) =>
        answer.results.map((result) =>
          withScores ? { document: toDocument(result), score: result.score } : toDocument(result),
        ),
      ),
    });
  } catch (error) {
    if (error instanceof RequestError) return send(response, error.httpStatus, { detail: error.detail });
    const failure = asToolplaneError(error);
    const headers: Record<string, string> = { [ERROR_CLASS_KEY]: failure.errorClass };
    if (failure.retryAfterMs !== undefined) {
      headers[RETRY_AFTER_KEY] = String(failure.retryAfterMs);
      headers["retry-after"] = String(Math.ceil(failure.retryAfterMs / 1000));
    }
    options.logger.warn({ err: failure, errorClass: failure.errorClass }, "retrieve request failed");
    send(response, httpStatusOf(failure.code), { detail: failure.message }, headers);
  }
}
