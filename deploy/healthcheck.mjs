// Container health check (Docker HEALTHCHECK, compose depends_on): asks this container's service over
// grpc.health.v1 whether it is SERVING. Exit 0 = healthy, 1 = not serving or unreachable.
// Kubernetes does not use this file: the chart's probes are the kubelet's native gRPC probes.
// Plain JavaScript so that it runs in the image without a build step.
import { credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

const port = process.env.TOOLPLANE_GRPC_PORT ?? "";
if (!/^[1-9][0-9]*$/.test(port)) {
  process.stderr.write(`healthcheck: TOOLPLANE_GRPC_PORT must be a port number, got ${JSON.stringify(port)}\n`);
  process.exit(1);
}
const timeoutMs = 2_000;

const { grpc } = loadPackageDefinition(loadSync(protoPath, { enums: String }));
const client = new grpc.health.v1.Health(`127.0.0.1:${port}`, credentials.createInsecure());
client.check({ service: "" }, { deadline: new Date(Date.now() + timeoutMs) }, (error, response) => {
  client.close();
  if (error) {
    process.stderr.write(`healthcheck: ${error.message}\n`);
    process.exit(1);
  }
  if (response.status !== "SERVING") {
    process.stderr.write(`healthcheck: status ${response.status}\n`);
    process.exit(1);
  }
  process.exit(0);
});
