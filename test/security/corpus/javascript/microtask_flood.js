// expect: model-error DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|ABORTED
// An endless microtask chain must be stopped like an endless loop.
(async () => {
  for (;;) await null;
})();
"started";
