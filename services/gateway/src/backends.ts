import {
  type CloseSessionRequest as CodeCloseSessionRequest,
  type CreateSessionRequest as CodeCreateSessionRequest,
  type CreateSessionResponse as CodeCreateSessionResponse,
  type ExecuteRequest as CodeExecuteRequest,
  type ExecuteResponse as CodeExecuteResponse,
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
import { createClient, type InvokeOptions, invoke, loadSecurityConfig } from "../../runtime/src/index.js";
import { ImageReferences } from "./image-references.js";

/**
 * What the gateway needs from the image, code and search services. Rejections
 * are ToolplaneErrors carrying the remote's error class; transport failures
 * (service down, deadline) are INFRASTRUCTURE.
 */
export interface Backends {
  image: {
    /** An image with both `data` and `sha256` may go by reference alone (image-references.ts). */
    process(request: ProcessRequest, options: InvokeOptions): Promise<ProcessResponse>;
  };
  code: {
    createSession(request: CodeCreateSessionRequest, options: InvokeOptions): Promise<CodeCreateSessionResponse>;
    execute(request: CodeExecuteRequest, options: InvokeOptions): Promise<CodeExecuteResponse>;
    closeSession(request: CodeCloseSessionRequest, options: InvokeOptions): Promise<unknown>;
  };
  search: {
    search(request: SearchRequest, options: InvokeOptions): Promise<SearchResponse>;
    imageSearch(request: ImageSearchRequest, options: InvokeOptions): Promise<SearchResponse>;
  };
  close(): void;
}

export interface BackendAddresses {
  image: string;
  code: string;
  search: string;
}

/**
 * gRPC clients for the three services (one HTTP/2 channel each, multiplexed). `imageBytesBeforeReference`: how
 * often an image's bytes go to the image service before calls name it by its sha256 (0 = always the bytes).
 */
export function createGrpcBackends(addresses: BackendAddresses, imageBytesBeforeReference = 2): Backends {
  // Read once: the TLS files and service token are the same for all three channels.
  const security = loadSecurityConfig();
  const image = createClient(ImageServiceClient, addresses.image, security);
  const code = createClient(CodeServiceClient, addresses.code, security);
  const search = createClient(SearchServiceClient, addresses.search, security);
  const references = new ImageReferences(
    (request, options) => invoke(image, image.process, request, options),
    imageBytesBeforeReference,
  );
  return {
    image: {
      process: (request, options) => references.call(request, options),
    },
    code: {
      createSession: (request, options) => invoke(code, code.createSession, request, options),
      execute: (request, options) => invoke(code, code.execute, request, options),
      closeSession: (request, options) => invoke(code, code.closeSession, request, options),
    },
    search: {
      search: (request, options) => invoke(search, search.search, request, options),
      imageSearch: (request, options) => invoke(search, search.imageSearch, request, options),
    },
    close() {
      image.close();
      code.close();
      search.close();
    },
  };
}
