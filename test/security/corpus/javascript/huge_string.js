// expect: model-error ABORTED|RESOURCE_EXHAUSTED
let s = "x";
for (;;) s += s;
