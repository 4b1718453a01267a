/**
 * V8 flags every service process starts with (run-all, the tests' and benchmarks' spawner, deploy/Dockerfile; the
 * deploy test checks the Dockerfile carries the same). Not settable in NODE_OPTIONS, nor at run time.
 *
 * --initial-old-space-size=64: with sharp (libvips) loaded, as it is in every service, V8 kept the old generation's
 * limit a few MB above a ~10 MB heap and started a full mark-compact every 7-10 gRPC calls that carried an image
 * (measured: 50-60 per 400 calls of a 0.5 MB image, 2-3 ms of CPU per call, on the image service and on a bare
 * grpc-js server that merely imports sharp). Starting the old generation's limit at 64 MB removes them (1 per 400
 * calls): image service CPU per call down ~35 % with image bytes, ~20 % by reference. It is a limit, not a
 * reservation: memory grows only as garbage does, up to 64 MB of old space before the first full collection.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=64"];
