import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadSecurityConfig, parseApiKeys } from "./security.js";

describe("parseApiKeys", () => {
  it("reads client, key, rate and concurrency", () => {
    assert.deepEqual(parseApiKeys("trainer:0123456789abcdef0123:50:16, eval:fedcba98765432100123"), [
      { client: "trainer", key: "0123456789abcdef0123", callsPerSecond: 50, maxConcurrent: 16 },
      {
        client: "eval",
        key: "fedcba98765432100123",
        callsPerSecond: Number.POSITIVE_INFINITY,
        maxConcurrent: Number.POSITIVE_INFINITY,
      },
    ]);
  });

  it("names the entry and the problem", () => {
    assert.throws(() => parseApiKeys("trainer"), /entry 1 must be <client>:<key>/);
    assert.throws(
      () => parseApiKeys("a:0123456789abcdef0123,b:short"),
      /entry 2: the key of client "b" must be at least 16/,
    );
    assert.throws(() => parseApiKeys("a:0123456789abcdef0123:zero"), /calls per second must be a positive number/);
    assert.throws(
      () => parseApiKeys("a:0123456789abcdef0123:5:1.5"),
      /max concurrent calls must be a positive integer/,
    );
    assert.throws(() => parseApiKeys("a:0123456789abcdef0123:5:0"), /max concurrent calls must be a positive integer/);
  });
});

describe("loadSecurityConfig", () => {
  it("is all off by default", () => {
    assert.deepEqual(loadSecurityConfig({}), {});
  });

  it("requires the three TLS files together", () => {
    assert.throws(
      () => loadSecurityConfig({ TOOLPLANE_TLS_CERT_FILE: "cert.pem", TOOLPLANE_TLS_KEY_FILE: "key.pem" }),
      /must be set together/,
    );
  });
});
