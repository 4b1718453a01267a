// expect: model-error ABORTED
// SVG passed to display(): refused by its first bytes before librsvg could parse it.
display(Uint8Array.from('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', (c) => c.charCodeAt(0)), "");
