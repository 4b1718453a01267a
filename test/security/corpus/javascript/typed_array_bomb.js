// expect: model-error RESOURCE_EXHAUSTED|ABORTED
// Typed arrays and ArrayBuffers are external memory: isolated-vm's allocator refuses them past the limit.
const kept = [];
for (let i = 0; i < 1024; i++) kept.push(new Float64Array(2 ** 24).fill(i), new ArrayBuffer(2 ** 27));
