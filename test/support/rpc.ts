import assert from "node:assert/strict";
import { type ServiceError, status } from "@grpc/grpc-js";
import { ERROR_CLASS_KEY, type ToolplaneError } from "../../services/runtime/src/index.js";

/** For assert.rejects on `invoke`: the RPC failed with this status and error class (and message). */
export function assertRpcError(
  error: unknown,
  code: number,
  errorClass: "MODEL" | "INFRASTRUCTURE",
  message?: RegExp,
): true {
  const failure = error as ToolplaneError;
  assert.equal(failure.code, code, failure.message);
  assert.equal(failure.errorClass, errorClass);
  if (message) assert.match(failure.message, message);
  return true;
}

/**
 * For a raw grpc-js call: asserts the exact status, the error class in the
 * trailing metadata (unless undefined) and the message; returns the error.
 */
export async function rejectsWithStatus(
  promise: Promise<unknown>,
  code: status,
  errorClass: "MODEL" | "INFRASTRUCTURE" | undefined,
  message: RegExp,
): Promise<ServiceError> {
  let caught: ServiceError | undefined;
  await assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${status[code]}, got ${status[error.code]}: ${error.details}`);
    if (errorClass !== undefined) assert.deepEqual(error.metadata.get(ERROR_CLASS_KEY), [errorClass]);
    assert.match(error.details, message);
    caught = error;
    return true;
  });
  return caught as unknown as ServiceError;
}
