// expect: model-error DEADLINE_EXCEEDED
while (true) {}
