// expect: contained
// No network primitives.
for (const name of ["fetch", "XMLHttpRequest", "WebSocket", "EventSource"]) {
  if (typeof globalThis[name] !== "undefined") console.log("ESCAPED", name);
}
"checked";
