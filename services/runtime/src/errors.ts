import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ErrorClass, type ToolError } from "../../../generated/toolplane/common/v1/common.js";

/** Trailing-metadata keys that carry the error class across process boundaries. */
export const ERROR_CLASS_KEY = "toolplane-error-class";
export const RETRY_AFTER_KEY = "toolplane-retry-after-ms";

export type ErrorClassName = "MODEL" | "INFRASTRUCTURE";

export interface ToolplaneErrorOptions {
  errorClass?: ErrorClassName;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * Base of every domain error. Domain code throws these; the gRPC layer maps them
 * to a status in one place (toServiceError) so a caller can always tell the
 * model's fault from the infrastructure's.
 */
export abstract class ToolplaneError extends Error {
  abstract readonly code: status;
  readonly errorClass: ErrorClassName;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, defaultClass: ErrorClassName, options: ToolplaneErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.errorClass = options.errorClass ?? defaultClass;
    this.retryAfterMs = options.retryAfterMs;
  }

  get retryable(): boolean {
    return this.errorClass === "INFRASTRUCTURE" && RETRYABLE_CODES.has(this.code);
  }
}

const RETRYABLE_CODES = new Set<status>([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED]);

/** The caller's arguments are wrong. Model fault unless stated otherwise. */
export class InvalidArgumentError extends ToolplaneError {
  readonly code = status.INVALID_ARGUMENT;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "MODEL", options);
  }
}

export class NotFoundError extends ToolplaneError {
  readonly code = status.NOT_FOUND;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "MODEL", options);
  }
}

/** A precondition of the system state does not hold (e.g. a frozen cache miss). */
export class FailedPreconditionError extends ToolplaneError {
  readonly code = status.FAILED_PRECONDITION;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** Overloaded or a quota hit. Infrastructure unless the model's own usage caused it. */
export class ResourceExhaustedError extends ToolplaneError {
  readonly code = status.RESOURCE_EXHAUSTED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

export class DeadlineExceededError extends ToolplaneError {
  readonly code = status.DEADLINE_EXCEEDED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** A dependency (sandbox, provider, service) is down or died. */
export class UnavailableError extends ToolplaneError {
  readonly code = status.UNAVAILABLE;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

export class UnauthenticatedError extends ToolplaneError {
  readonly code = status.UNAUTHENTICATED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** A bug of ours. */
export class InternalError extends ToolplaneError {
  readonly code = status.INTERNAL;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/**
 * Turns any thrown value into a ServiceError for grpc-js. Unknown errors are
 * INTERNAL/INFRASTRUCTURE: an unexpected exception is never the model's fault.
 */
export function toServiceError(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  const mapped =
    error instanceof ToolplaneError
      ? error
      : isServiceError(error)
        ? fromServiceError(error)
        : new InternalError(error instanceof Error ? error.message : String(error));
  const metadata = new Metadata();
  metadata.set(ERROR_CLASS_KEY, mapped.errorClass);
  if (mapped.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_KEY, String(mapped.retryAfterMs));
  return { code: mapped.code, details: mapped.message, metadata };
}

export function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    typeof (error as { code: unknown }).code === "number" &&
    "metadata" in error
  );
}

class RemoteError extends ToolplaneError {
  constructor(
    readonly code: status,
    message: string,
    options: ToolplaneErrorOptions,
  ) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/**
 * Reads a ServiceError received from another toolplane service back into a
 * ToolplaneError, keeping the remote's error class. Errors without the class
 * metadata come from the transport (connection refused, deadline) and are
 * INFRASTRUCTURE.
 */
export function fromServiceError(error: ServiceError): ToolplaneError {
  const classValue = error.metadata?.get(ERROR_CLASS_KEY)[0];
  const retryValue = error.metadata?.get(RETRY_AFTER_KEY)[0];
  const errorClass: ErrorClassName = classValue === "MODEL" ? "MODEL" : "INFRASTRUCTURE";
  const retryAfterMs = retryValue === undefined ? undefined : Number(retryValue);
  const message = error.details || error.message;
  return new RemoteError(error.code, message, { errorClass, retryAfterMs, cause: error });
}

/** Any thrown value as a ToolplaneError (for in-band reporting). */
export function asToolplaneError(error: unknown): ToolplaneError {
  if (error instanceof ToolplaneError) return error;
  if (isServiceError(error)) return fromServiceError(error);
  return new InternalError(error instanceof Error ? error.message : String(error), { cause: error });
}

/** The in-band (response body) form of an error. */
export function toToolError(error: unknown): ToolError {
  const mapped = asToolplaneError(error);
  return {
    errorClass: mapped.errorClass === "MODEL" ? ErrorClass.ERROR_CLASS_MODEL : ErrorClass.ERROR_CLASS_INFRASTRUCTURE,
    code: status[mapped.code] ?? "UNKNOWN",
    message: mapped.message,
    retryable: mapped.retryable,
    retryAfterMs: mapped.retryAfterMs ?? 0,
  };
}
