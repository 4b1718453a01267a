/**
 * The message of any thrown value (as grpc-js `getErrorMessage`). A module of its own, free of imports, so
 * telemetry.ts can use it before instrumentation loads grpc-js (errors.ts imports grpc-js).
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
