import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addressProblem } from "./address.js";
import { address, ConfigError, loadConfig } from "./config.js";

const ACCEPTED = [
  "127.0.0.1:50052",
  "image:50052",
  "toolplane-image.default.svc.cluster.local:50052",
  "[::1]:50052",
  "dns:///image:50052",
  "dns:///[::1]:50052",
  "dns://8.8.8.8/image:50052",
  "dns:image:50052",
  "ipv4:127.0.0.1:1,127.0.0.2:2",
  "ipv6:[::1]:50052",
  "unix:/run/toolplane/image.sock",
];

const REJECTED = [
  "",
  "image",
  "image:",
  "image:0",
  "image:65536",
  "::1:50052",
  "[::1]",
  "[not-v6]:1",
  "dns:///",
  "ipv4:[::1]:1",
  "host name:1",
  "unix:",
];

describe("address validator", () => {
  it("accepts every gRPC target form", () => {
    for (const value of ACCEPTED) assert.equal(addressProblem(value), undefined, value);
  });

  it("rejects malformed addresses with a reason", () => {
    for (const value of REJECTED) assert.equal(typeof addressProblem(value), "string", value);
  });

  // The gateway and the code service read TOOLPLANE_IMAGE_ADDR through the same schema.
  it("the gateway's (required) and the code service's (optional) schema accept the same addresses", () => {
    const gateway = { TOOLPLANE_IMAGE_ADDR: address("127.0.0.1:50052") };
    const code = { TOOLPLANE_IMAGE_ADDR: address("", { optional: true }) };
    for (const value of ["dns:///image:50052", "[::1]:50052", "image:50052"]) {
      assert.equal(loadConfig(gateway, { TOOLPLANE_IMAGE_ADDR: value }).TOOLPLANE_IMAGE_ADDR, value);
      assert.equal(loadConfig(code, { TOOLPLANE_IMAGE_ADDR: value }).TOOLPLANE_IMAGE_ADDR, value);
    }
    assert.equal(loadConfig(code, {}).TOOLPLANE_IMAGE_ADDR, "");
    for (const shape of [gateway, code]) {
      assert.throws(
        () => loadConfig(shape, { TOOLPLANE_IMAGE_ADDR: "image" }),
        (error: unknown) =>
          error instanceof ConfigError && /TOOLPLANE_IMAGE_ADDR="image": expected host:port/.test(error.message),
      );
    }
  });
});
