// expect: model-error DEADLINE_EXCEEDED|ABORTED
// Blocking forever on Atomics.wait is bounded by the timeout (or refused).
const cell = new Int32Array(new SharedArrayBuffer(4));
Atomics.wait(cell, 0, 0);
