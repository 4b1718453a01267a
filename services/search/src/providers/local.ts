import { type CallScope, throwIfStopped } from "../../../runtime/src/index.js";
import type { LocalImageIndex } from "../local-image-index.js";

import type { ImageQuery, ProviderAnswer, SearchProvider, TextIndex, TextQuery } from "../types.js";

/** The embedded provider: BM25 over a local corpus and perceptual hashes over local images. */
export class LocalProvider implements SearchProvider {
  readonly name = "local";
  readonly textSearch = true;
  readonly imageSearch = true;

  constructor(
    private readonly text: TextIndex,
    private readonly images: LocalImageIndex,
  ) {}

  async search(query: TextQuery, scope: CallScope): Promise<ProviderAnswer> {
    throwIfStopped(scope, "the local index was queried");
    return { results: await this.text.search(query.query, query.count), queueMs: 0 };
  }

  async searchImage(query: ImageQuery, scope: CallScope): Promise<ProviderAnswer> {
    throwIfStopped(scope, "hashing the query image");
    return { results: await this.images.search(query.data, query.count), queueMs: 0 };
  }
}
