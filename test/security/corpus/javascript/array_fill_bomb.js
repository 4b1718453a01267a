// expect: model-error RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED
// Fills a sparse 2^30-element array inside a C++ builtin that ignores termination: isolated-vm loses the
// isolate (its thread is parked for good). Only this session may pay: the canary on the same host keeps its state.
new Array(2 ** 30).fill(0);
