/**
 * Preload that turns tracing on for a service:
 *   node --import ./dist/services/runtime/src/telemetry-register.js dist/services/<svc>/src/main.js
 * ESM imports of @grpc/grpc-js bypass require hooks, so the gRPC instrumentation
 * can only patch grpc-js through an ESM loader hook (import-in-the-middle),
 * registered here before the service's main imports anything. With no OTLP
 * endpoint configured this preload does nothing.
 */
import { register } from "node:module";
import { createAddHookMessageChannel } from "import-in-the-middle";
import { startTelemetry, telemetryEnabled } from "./telemetry.js";

if (telemetryEnabled()) {
  // The channel limits the loader hook to the modules an instrumentation asked for.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register("import-in-the-middle/hook.mjs", import.meta.url, registerOptions);
  await startTelemetry();
  await waitForAllMessagesAcknowledged();
}
