// expect: model-error ABORTED|RESOURCE_EXHAUSTED
// One ArrayBuffer far beyond the limit: refused as an exception the code could catch.
const b = new ArrayBuffer(2 ** 34);
new Uint8Array(b).fill(1);
