import { createServer, type Server } from "node:http";
import { LRUCache } from "lru-cache";
import type { Logger } from "../../runtime/src/index.js";
import type { ImagePublisher } from "./providers/remote.js";
import type { ImageQuery } from "./types.js";

/**
 * Google Lens style APIs (SerpAPI google_lens, Serper /lens) fetch the query
 * image from a URL. This small HTTP server hands out the images of recent
 * image searches under /images/<sha256>; TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL is
 * the address at which the provider can reach it (an ingress or tunnel).
 * Only content-addressed, recently searched images are served, for a few minutes.
 */
export class ImageHost implements ImagePublisher {
  private readonly images: LRUCache<string, ImageQuery>;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly publicUrl: string,
    ttlMs: number,
  ) {
    // Bounded by bytes too: query images may be up to TOOLPLANE_SEARCH_MAX_IMAGE_BYTES each.
    this.images = new LRUCache({
      max: 1000,
      maxSize: 256 * 1024 * 1024,
      sizeCalculation: (image) => Math.max(1, image.data.byteLength),
      ttl: ttlMs,
    });
  }

  static async start(options: {
    host: string;
    port: number;
    publicUrl: string;
    ttlMs: number;
    logger: Logger;
  }): Promise<ImageHost> {
    let host: ImageHost | undefined;
    const server = createServer((request, response) => {
      const match = /^\/images\/([0-9a-f]{64})$/.exec(request.url ?? "");
      const image = match && request.method === "GET" ? host?.images.get(match[1] as string) : undefined;
      if (!image) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": image.mimeType, "content-length": image.data.byteLength });
      response.end(image.data);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => resolve());
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : options.port;
    host = new ImageHost(server, port, options.publicUrl.replace(/\/+$/, ""), options.ttlMs);
    options.logger.info({ port, publicUrl: options.publicUrl }, "serving query images for lens providers");
    return host;
  }

  publish(query: ImageQuery): string {
    this.images.set(query.sha256, query);
    return `${this.publicUrl}/images/${query.sha256}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
