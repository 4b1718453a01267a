// expect: model-error RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED
// Memory limit of the isolate (under a loaded box the 4 s timeout may come first: MODEL either way).
const hoard = [];
while (true) hoard.push(new Array(1_000_000).fill(Math.random()));
