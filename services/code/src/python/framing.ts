/**
 * Frames between the service and the Python kernel (kernel.py speaks the same
 * layout): an 8-byte header of two big-endian uint32 (JSON length, total binary
 * length), the UTF-8 JSON header, then the binary blobs back to back. The JSON
 * lists each blob's length under "blobs", so images travel as raw bytes.
 */

import { errorMessage } from "../../../runtime/src/error-message.js";

export interface Frame {
  header: Record<string, unknown>;
  blobs: Buffer[];
}

const PREFIX_BYTES = 8;

export function encodeFrame(header: Record<string, unknown>, blobs: Buffer[] = []): Buffer {
  return Buffer.concat(encodeFrameParts(header, blobs));
}

/** A frame as its parts, in order: prefix and header in one buffer, then the blobs themselves (not copied). */
export function encodeFrameParts(header: Record<string, unknown>, blobs: Buffer[] = []): Buffer[] {
  const json = Buffer.from(JSON.stringify({ ...header, blobs: blobs.map((blob) => blob.length) }), "utf8");
  const binaryLength = blobs.reduce((sum, blob) => sum + blob.length, 0);
  const head = Buffer.alloc(PREFIX_BYTES + json.length);
  head.writeUInt32BE(json.length, 0);
  head.writeUInt32BE(binaryLength, 4);
  json.copy(head, PREFIX_BYTES);
  return [head, ...blobs];
}

export class FrameError extends Error {
  /** The well-formed frames that came before the violation in the same push (the peer said them first). */
  decoded: Frame[] = [];
}

/**
 * Reassembles frames from a byte stream delivered in arbitrary chunks. A frame
 * larger than maxFrameBytes or a malformed header is a protocol violation: the
 * peer is no longer trusted and the caller must drop it.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Size of the frame being assembled, once its prefix is here; 0 = not known yet. */
  private expected = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    try {
      return this.decode(frames);
    } catch (error) {
      if (error instanceof FrameError) error.decoded = frames;
      throw error;
    }
  }

  private decode(frames: Frame[]): Frame[] {
    for (;;) {
      if (this.expected === 0) {
        if (this.buffered < PREFIX_BYTES) return frames;
        const head = this.peek(PREFIX_BYTES);
        const total = PREFIX_BYTES + head.readUInt32BE(0) + head.readUInt32BE(4);
        if (total > this.maxFrameBytes) {
          throw new FrameError(`frame of ${total} bytes exceeds the limit of ${this.maxFrameBytes} bytes`);
        }
        this.expected = total;
      }
      // A large frame arrives in many chunks: they are joined once, when all are here (joining on every
      // chunk made a frame of n chunks cost n^2/2 chunk copies).
      if (this.buffered < this.expected) return frames;
      const bytes = this.take(this.expected);
      this.expected = 0;
      frames.push(parseFrame(bytes, bytes.readUInt32BE(0), bytes.readUInt32BE(4)));
    }
  }

  private peek(size: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= size) return first.subarray(0, size);
    this.chunks = [Buffer.concat(this.chunks)];
    return (this.chunks[0] as Buffer).subarray(0, size);
  }

  private take(size: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const taken = all.subarray(0, size);
    const rest = all.subarray(size);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }
}

function parseFrame(bytes: Buffer, jsonLength: number, binaryLength: number): Frame {
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + jsonLength).toString("utf8"));
  } catch (error) {
    throw new FrameError(`frame header is not JSON: ${errorMessage(error)}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new FrameError("frame header is not a JSON object");
  }
  const lengths = (header as { blobs?: unknown }).blobs ?? [];
  if (!Array.isArray(lengths) || !lengths.every((length) => Number.isInteger(length) && length >= 0)) {
    throw new FrameError("frame header has an invalid blobs list");
  }
  const sum = (lengths as number[]).reduce((total, length) => total + length, 0);
  if (sum !== binaryLength) {
    throw new FrameError(`frame blobs add up to ${sum} bytes but the frame carries ${binaryLength}`);
  }
  const blobs: Buffer[] = [];
  let offset = PREFIX_BYTES + jsonLength;
  for (const length of lengths as number[]) {
    // Copy so a retained image does not pin the whole frame buffer.
    blobs.push(Buffer.from(bytes.subarray(offset, offset + length)));
    offset += length;
  }
  return { header: header as Record<string, unknown>, blobs };
}
