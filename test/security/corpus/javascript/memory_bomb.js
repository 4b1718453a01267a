// expect: model-error RESOURCE_EXHAUSTED
// Memory limit of the isolate.
const hoard = [];
while (true) hoard.push(new Array(1_000_000).fill(Math.random()));
