// expect: model-error ABORTED|RESOURCE_EXHAUSTED
function dive(n) {
  return dive(n + 1) + 1;
}
dive(0);
