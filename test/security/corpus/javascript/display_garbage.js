// expect: model-error ABORTED|INVALID_ARGUMENT
// display() validates what it is given.
display(new Uint8Array([1, 2, 3, 4, 5]), "image/png");
