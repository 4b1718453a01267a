import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  type ChannelCredentials,
  credentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServerCredentials,
  ServerCredentials as ServerCredentialsFactory,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from "@grpc/grpc-js";
import { z } from "zod";
import { loadConfig } from "./config.js";

/**
 * Who may call a service. Two independent layers, both off by default so
 * `make run` needs nothing:
 * - a shared service token: backends accept calls only from holders of
 *   TOOLPLANE_SERVICE_TOKEN (the gateway), sent as metadata;
 * - mutual TLS: with TOOLPLANE_TLS_{CERT,KEY,CA}_FILE every server requires a
 *   client certificate signed by the CA and every client presents its own.
 * Health and reflection stay open: Kubernetes probes carry no credentials.
 */
export const SERVICE_TOKEN_KEY = "x-toolplane-service-token";

const OPEN_METHOD_PREFIXES = ["/grpc.health.v1.Health/", "/grpc.reflection."];

export const securityConfigShape = {
  TOOLPLANE_SERVICE_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  TOOLPLANE_TLS_CERT_FILE: z.string().min(1).optional(),
  TOOLPLANE_TLS_KEY_FILE: z.string().min(1).optional(),
  TOOLPLANE_TLS_CA_FILE: z.string().min(1).optional(),
  TOOLPLANE_API_KEYS: z.string().min(1).optional(),
};

export interface SecurityConfig {
  serviceToken?: string;
  apiKeys?: ApiKey[];
  tls?: { cert: Buffer; key: Buffer; ca: Buffer };
}

/** Reads and validates the security settings; TLS needs all three files or none. */
export function loadSecurityConfig(env: NodeJS.ProcessEnv = process.env): SecurityConfig {
  const config = loadConfig(securityConfigShape, env);
  const files = [config.TOOLPLANE_TLS_CERT_FILE, config.TOOLPLANE_TLS_KEY_FILE, config.TOOLPLANE_TLS_CA_FILE];
  const given = files.filter((file) => file !== undefined).length;
  if (given !== 0 && given !== 3) {
    throw new Error(
      "TOOLPLANE_TLS_CERT_FILE, TOOLPLANE_TLS_KEY_FILE and TOOLPLANE_TLS_CA_FILE must be set together (mutual TLS)",
    );
  }
  const security: SecurityConfig = {};
  if (config.TOOLPLANE_SERVICE_TOKEN) security.serviceToken = config.TOOLPLANE_SERVICE_TOKEN;
  if (config.TOOLPLANE_API_KEYS) security.apiKeys = parseApiKeys(config.TOOLPLANE_API_KEYS);
  if (given === 3) {
    security.tls = {
      cert: readFileSync(config.TOOLPLANE_TLS_CERT_FILE as string),
      key: readFileSync(config.TOOLPLANE_TLS_KEY_FILE as string),
      ca: readFileSync(config.TOOLPLANE_TLS_CA_FILE as string),
    };
  }
  return security;
}

export function serverCredentials(security: SecurityConfig): ServerCredentials {
  if (!security.tls) return ServerCredentialsFactory.createInsecure();
  return ServerCredentialsFactory.createSsl(
    security.tls.ca,
    [{ cert_chain: security.tls.cert, private_key: security.tls.key }],
    true,
  );
}

export function channelCredentials(security: SecurityConfig): ChannelCredentials {
  if (!security.tls) return credentials.createInsecure();
  return credentials.createSsl(security.tls.ca, security.tls.key, security.tls.cert);
}

function tokensEqual(expected: string, presented: string): boolean {
  // Compare digests so neither length nor content leaks through timing.
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(presented).digest();
  return timingSafeEqual(a, b);
}

/** The server interceptors a security config asks for. */
export function serverInterceptors(security: SecurityConfig): ServerInterceptor[] {
  const interceptors: ServerInterceptor[] = [];
  if (security.serviceToken) interceptors.push(serviceTokenInterceptor(security.serviceToken));
  if (security.apiKeys) interceptors.push(apiKeyInterceptor(security.apiKeys));
  return interceptors;
}

/** Rejects calls without the service token with UNAUTHENTICATED (health and reflection stay open). */
export function serviceTokenInterceptor(token: string): ServerInterceptor {
  return (methodDescriptor, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const open = OPEN_METHOD_PREFIXES.some((prefix) => methodDescriptor.path.startsWith(prefix));
            const presented = metadata.get(SERVICE_TOKEN_KEY)[0];
            if (open || (typeof presented === "string" && tokensEqual(token, presented))) {
              nextMetadata(metadata);
              return;
            }
            const trailers = new Metadata();
            trailers.set("toolplane-error-class", "INFRASTRUCTURE");
            call.sendStatus({
              code: status.UNAUTHENTICATED,
              details: `missing or wrong ${SERVICE_TOKEN_KEY}: this service only accepts calls from the gateway`,
              metadata: trailers,
            });
          },
        });
      },
    });
}

/** Adds the service token to every outgoing call. */
export function serviceTokenClientInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set(SERVICE_TOKEN_KEY, token);
        next(metadata, listener);
      },
    });
}

/**
 * API keys for callers of the gateway, with a quota each.
 * TOOLPLANE_API_KEYS = comma-separated `<client>:<key>[:<calls per second>[:<max concurrent calls>]]`;
 * the key travels as `authorization: Bearer <key>`. A caller over its rate or
 * concurrency gets RESOURCE_EXHAUSTED with a retry hint; the client name is
 * passed on as `toolplane-client-id` so admission control shares capacity
 * fairly between keys, and a caller cannot claim another client's name.
 */
export interface ApiKey {
  client: string;
  key: string;
  callsPerSecond: number;
  maxConcurrent: number;
}

export const CLIENT_ID_KEY = "toolplane-client-id";

export function parseApiKeys(spec: string): ApiKey[] {
  const keys: ApiKey[] = [];
  for (const [index, entry] of spec.split(",").entries()) {
    const parts = entry.trim().split(":");
    const [client, key, rate, concurrent] = parts;
    const where = `TOOLPLANE_API_KEYS entry ${index + 1}`;
    if (parts.length < 2 || parts.length > 4 || !client || !key) {
      throw new Error(`${where} must be <client>:<key>[:<calls per second>[:<max concurrent>]]`);
    }
    if (key.length < 16) throw new Error(`${where}: the key of client "${client}" must be at least 16 characters`);
    const callsPerSecond = rate === undefined || rate === "" ? Number.POSITIVE_INFINITY : Number(rate);
    const maxConcurrent = concurrent === undefined || concurrent === "" ? Number.POSITIVE_INFINITY : Number(concurrent);
    if (!(callsPerSecond > 0)) throw new Error(`${where}: calls per second must be a positive number`);
    if (!(Number.isInteger(maxConcurrent) || maxConcurrent === Number.POSITIVE_INFINITY) || maxConcurrent < 1) {
      throw new Error(`${where}: max concurrent calls must be a positive integer`);
    }
    keys.push({ client, key, callsPerSecond, maxConcurrent });
  }
  return keys;
}

/** Token bucket plus in-flight count for one key. */
class KeyQuota {
  private tokens: number;
  private refilledAt = performance.now();
  inFlight = 0;

  constructor(readonly apiKey: ApiKey) {
    this.tokens = Math.min(apiKey.callsPerSecond, 1_000_000);
  }

  /** Takes one call's worth of quota, or says how long to wait (ms). */
  take(): number {
    const { callsPerSecond, maxConcurrent } = this.apiKey;
    if (this.inFlight >= maxConcurrent) return 50;
    if (Number.isFinite(callsPerSecond)) {
      const now = performance.now();
      this.tokens = Math.min(callsPerSecond, this.tokens + ((now - this.refilledAt) / 1000) * callsPerSecond);
      this.refilledAt = now;
      if (this.tokens < 1) return Math.ceil(((1 - this.tokens) / callsPerSecond) * 1000);
      this.tokens -= 1;
    }
    this.inFlight += 1;
    return 0;
  }
}

function rejectCall(
  call: { sendStatus: (status: { code: status; details: string; metadata: Metadata }) => void },
  code: status,
  details: string,
  retryAfterMs?: number,
): void {
  const trailers = new Metadata();
  trailers.set("toolplane-error-class", "INFRASTRUCTURE");
  if (retryAfterMs !== undefined) trailers.set("toolplane-retry-after-ms", String(retryAfterMs));
  call.sendStatus({ code, details, metadata: trailers });
}

export function apiKeyInterceptor(keys: ApiKey[]): ServerInterceptor {
  const quotas = keys.map((apiKey) => new KeyQuota(apiKey));
  const findQuota = (presented: string) => quotas.find((quota) => tokensEqual(quota.apiKey.key, presented));
  return (methodDescriptor, call) => {
    let admitted: KeyQuota | undefined;
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            if (OPEN_METHOD_PREFIXES.some((prefix) => methodDescriptor.path.startsWith(prefix))) {
              nextMetadata(metadata);
              return;
            }
            const header = metadata.get("authorization")[0];
            const presented = typeof header === "string" ? header.replace(/^Bearer\s+/i, "") : "";
            const quota = presented ? findQuota(presented) : undefined;
            if (!quota) {
              rejectCall(call, status.UNAUTHENTICATED, "missing or unknown API key (send authorization: Bearer <key>)");
              return;
            }
            const waitMs = quota.take();
            if (waitMs > 0) {
              rejectCall(
                call,
                status.RESOURCE_EXHAUSTED,
                `client "${quota.apiKey.client}" is over its quota (${quota.apiKey.callsPerSecond} calls/s, ${quota.apiKey.maxConcurrent} concurrent); retry after ${waitMs} ms`,
                waitMs,
              );
              return;
            }
            admitted = quota;
            metadata.set(CLIENT_ID_KEY, quota.apiKey.client);
            nextMetadata(metadata);
          },
        });
      },
      sendStatus: (callStatus, next) => {
        if (admitted) admitted.inFlight -= 1;
        admitted = undefined;
        next(callStatus);
      },
    });
  };
}
