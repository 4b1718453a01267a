import {
  type CallOptions,
  type Client,
  type ClientUnaryCall,
  type credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import type { CallScope } from "./call-scope.js";
import { fromServiceError, stoppedError } from "./errors.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./grpc-server.js";
import { channelCredentials, type SecurityConfig, serviceTokenClientInterceptor } from "./security.js";

type ClientConstructor<C> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: Record<string, unknown>,
) => C;

/**
 * A client for a toolplane service, with message limits matching the servers' and the credentials (service
 * token, mutual TLS) its process's main.ts read (loadSecurityConfig); default: neither (tests, local tools).
 */
export function createClient<C extends Client>(
  Ctor: ClientConstructor<C>,
  address: string,
  security: SecurityConfig = {},
): C {
  return new Ctor(address, channelCredentials(security), {
    "grpc.max_receive_message_length": DEFAULT_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": DEFAULT_MAX_MESSAGE_BYTES,
    interceptors: security.serviceToken ? [serviceTokenClientInterceptor(security.serviceToken)] : [],
    // A restarted service is found again within a second instead of after grpc's default backoff (up to 120 s).
    "grpc.max_reconnect_backoff_ms": 1000,
  });
}

type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => ClientUnaryCall;

/**
 * Calls a unary method as a promise, within the scope's deadline and cancelled on the wire when its signal
 * aborts (both optional: a test or a one-off call may set neither). Remote errors come back as
 * ToolplaneErrors with the remote's error class; an aborted signal as its stoppedError.
 */
export function invoke<Request, Response>(
  client: Client,
  method: UnaryMethod<Request, Response>,
  request: Request,
  scope: Partial<CallScope> = {},
  metadata: Metadata = new Metadata(),
): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    if (scope.signal?.aborted) {
      reject(stoppedError(scope.signal, "call cancelled before it was sent"));
      return;
    }
    const callOptions: Partial<CallOptions> = {};
    if (scope.deadlineMs !== undefined) callOptions.deadline = new Date(scope.deadlineMs);
    const call = method.call(client, request, metadata, callOptions, (error, response) => {
      scope.signal?.removeEventListener("abort", onAbort);
      if (error) reject(fromServiceError(error));
      else resolve(response);
    });
    // The call fails with what stopped it (the caller's deadline or its leaving, as the signal's reason says), not
    // with the CANCELLED that cancelling it on the wire would bring back.
    function onAbort(): void {
      reject(stoppedError(scope.signal, "the call stopped before the remote service answered"));
      call.cancel();
    }
    scope.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
