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
};

export interface SecurityConfig {
  serviceToken?: string;
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
