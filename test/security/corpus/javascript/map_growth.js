// expect: model-error RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED
// A Map grown without end: the heap limit stops it.
const m = new Map();
for (let i = 0; ; i++) m.set(i, { i, s: `v${i}` });
