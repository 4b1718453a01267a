import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

// A generic client built only from the standard health proto: no project code.
const healthPackage = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as unknown as {
  grpc: { health: { v1: { Health: new (address: string, creds: unknown) => HealthClient } } };
};
interface HealthClient {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response: { status: string }) => void,
  ): void;
  close(): void;
}

/** grpc.health.v1 Check of `service` ("" = the server overall) at `address`: the status name, e.g. "SERVING". */
export function checkHealth(address: string, service: string): Promise<string> {
  const client = new healthPackage.grpc.health.v1.Health(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    });
  });
}
