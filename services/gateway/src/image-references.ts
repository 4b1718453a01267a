import { status } from "@grpc/grpc-js";
import { LRUCache } from "lru-cache";
import type { ProcessRequest, ProcessResponse } from "../../../generated/toolplane/image/v1/image.js";
import { asToolplaneError, type CallScope } from "../../runtime/src/index.js";

type Process = (request: ProcessRequest, scope: CallScope) => Promise<ProcessResponse>;

/** Images whose sending the gateway remembers (keys and a count only). */
const REMEMBERED = 16_384;

/**
 * Sends an image the image service probably holds decoded by its sha256 alone.
 *
 * The image service keeps decoded inputs keyed by the sha256 of their bytes and admits an image on its second
 * sighting, so once the gateway has sent an image's bytes `sendBytesTimes` times, later calls name it by its
 * sha256: no transfer, no decode of the request's bytes, no hashing on the service. An image the service does
 * not hold (evicted, restarted, another replica) answers NOT_FOUND, and the call goes again with the bytes, which
 * starts the count anew. `sendBytesTimes` 0 turns references off.
 *
 * A request whose image carries both `data` and `sha256` may be sent either way; one with only `data` goes as it is.
 */
export class ImageReferences {
  private readonly sent = new LRUCache<string, number>({ max: REMEMBERED });
  private fallbacks = 0;

  constructor(
    private readonly process: Process,
    private readonly sendBytesTimes: number,
  ) {}

  /** Calls that named an image the service did not hold and were sent again with the bytes. */
  get resentWithBytes(): number {
    return this.fallbacks;
  }

  async call(request: ProcessRequest, scope: CallScope): Promise<ProcessResponse> {
    const image = request.image;
    const sha256 = image?.sha256;
    if (image === undefined || !sha256 || !image.data || image.data.length === 0) return this.process(request, scope);
    const { data, ...described } = image;
    if (this.sendBytesTimes > 0 && (this.sent.get(sha256) ?? 0) >= this.sendBytesTimes) {
      try {
        return await this.process({ ...request, image: { ...described, data: undefined, sha256 } }, scope);
      } catch (error) {
        if (asToolplaneError(error).code !== status.NOT_FOUND) throw error;
        this.sent.delete(sha256);
        this.fallbacks += 1;
      }
    }
    const response = await this.process({ ...request, image: { ...described, sha256: undefined, data } }, scope);
    // Counted once delivered: a send that failed taught the service nothing.
    this.sent.set(sha256, (this.sent.get(sha256) ?? 0) + 1);
    return response;
  }
}
