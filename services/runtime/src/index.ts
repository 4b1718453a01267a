export * from "./call-events.js";
export * from "./config.js";
export * from "./errors.js";
export * from "./grpc-client.js";
export * from "./grpc-server.js";
export * from "./lifecycle.js";
export * from "./logger.js";
export * from "./security.js";
