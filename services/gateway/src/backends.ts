import type {
  CloseSessionRequest as CodeCloseSessionRequest,
  CreateSessionRequest as CodeCreateSessionRequest,
  CreateSessionResponse as CodeCreateSessionResponse,
  ExecuteRequest as CodeExecuteRequest,
  ExecuteResponse as CodeExecuteResponse,
  CodeServiceClient,
} from "../../../generated/toolplane/code/v1/code.js";
import {
  ImageServiceClient,
  type ProcessRequest,
  type ProcessResponse,
} from "../../../generated/toolplane/image/v1/image.js";
import {
  type ImageSearchRequest,
  type SearchRequest,
  type SearchResponse,
  SearchServiceClient,
} from "../../../generated/toolplane/search/v1/search.js";
import {
  type CallScope,
  createClient,
  createLogger,
  invoke,
  type Logger,
  type SecurityConfig,
} from "../../runtime/src/index.js";
import { CodeReplicaPool, type CodeReplicaPoolOptions } from "./code-replicas.js";
import { ImageReferences } from "./image-references.js";

/**
 * What the gateway needs from the image, code and search services. Rejections
 * are ToolplaneErrors carrying the remote's error class; transport failures
 * (service down, deadline) are INFRASTRUCTURE.
 */
export interface Backends {
  image: {
    /** An image with both `data` and `sha256` may go by reference alone (image-references.ts). */
    process(request: ProcessRequest, scope: CallScope): Promise<ProcessResponse>;
  };
  /**
   * A code session lives on one code replica: createSession places it and answers which (`replica`), and
   * every later call names that replica (code-replicas.ts). Without `replica`, one fixed code service.
   */
  code: {
    createSession(
      request: CodeCreateSessionRequest,
      scope: CallScope,
    ): Promise<CodeCreateSessionResponse & { replica?: string }>;
    /** `placement.replica` is updated when the session had to move to another replica (code-replicas.ts). */
    execute(
      request: CodeExecuteRequest,
      scope: CallScope,
      placement?: { replica?: string },
    ): Promise<CodeExecuteResponse>;
    closeSession(request: CodeCloseSessionRequest, scope: CallScope, replica?: string): Promise<unknown>;
  };
  search: {
    search(request: SearchRequest, scope: CallScope): Promise<SearchResponse>;
    imageSearch(request: ImageSearchRequest, scope: CallScope): Promise<SearchResponse>;
  };
  close(): void;
}

export interface BackendAddresses {
  image: string;
  /** Every code replica: comma-separated addresses and/or `dns:///name:port` (code-replicas.ts). */
  code: string;
  search: string;
}

/**
 * gRPC clients for the three services (one HTTP/2 channel each, multiplexed). `imageBytesBeforeReference`: how
 * often an image's bytes go to the image service before calls name it by its sha256 (0 = always the bytes).
 */
export function createGrpcBackends(
  addresses: BackendAddresses,
  imageBytesBeforeReference = 2,
  logger: Logger = createLogger("gateway", "silent"),
  placement: Omit<CodeReplicaPoolOptions, "security" | "logger"> = {},
  /** The TLS files and service token main.ts read, the same for all channels; default: neither (tests). */
  security: SecurityConfig = {},
): Backends & { codeReplicas: CodeReplicaPool } {
  const image = createClient(ImageServiceClient, addresses.image, security);
  const codeReplicas = new CodeReplicaPool(addresses.code, { ...placement, security, logger });
  const onReplica = async <T>(
    placement: { replica?: string } | undefined,
    sessionId: string,
    run: (client: CodeServiceClient) => Promise<T>,
    moveOnLoss: boolean,
  ): Promise<T> => {
    const address = placement?.replica ?? codeReplicas.place().address;
    try {
      return await run(codeReplicas.replica(address).client);
    } catch (error) {
      const moved = await codeReplicas.replaceSession(
        address,
        sessionId,
        error,
        moveOnLoss && placement ? (replica) => run(replica.client) : undefined,
      );
      if (placement) placement.replica = moved.replica;
      codeReplicas.countSession(address, -1);
      codeReplicas.countSession(moved.replica, 1);
      return moved.value;
    }
  };
  const search = createClient(SearchServiceClient, addresses.search, security);
  const references = new ImageReferences(
    (request, scope) => invoke(image, image.process, request, scope),
    imageBytesBeforeReference,
  );
  return {
    image: {
      process: (request, scope) => references.call(request, scope),
    },
    codeReplicas,
    code: {
      async createSession(request, scope) {
        // A replica that went away since its last load report is skipped (each tried once): the session holds
        // no state yet.
        const tried = new Set<string>();
        for (;;) {
          const replica = codeReplicas.place(tried);
          try {
            const response = await invoke(replica.client, replica.client.createSession, request, scope);
            codeReplicas.markUp(replica.address);
            codeReplicas.countSession(replica.address, 1);
            return { ...response, replica: replica.address };
          } catch (error) {
            if (!(await codeReplicas.unreachable(replica.address, error))) throw error;
            tried.add(replica.address);
          }
        }
      },
      execute: (request, scope, placement) =>
        onReplica(placement, request.sessionId, (code) => invoke(code, code.execute, request, scope), true),
      async closeSession(request, scope, replica) {
        const closed = await onReplica(
          replica === undefined ? undefined : { replica },
          request.sessionId,
          (code) => invoke(code, code.closeSession, request, scope),
          false,
        );
        if (replica) codeReplicas.countSession(replica, -1);
        return closed;
      },
    },
    search: {
      search: (request, scope) => invoke(search, search.search, request, scope),
      imageSearch: (request, scope) => invoke(search, search.imageSearch, request, scope),
    },
    close() {
      image.close();
      codeReplicas.close();
      search.close();
    },
  };
}
