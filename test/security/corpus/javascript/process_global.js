// expect: contained
// No Node globals inside the isolate.
for (const name of ["process", "require", "module", "Buffer", "global", "__dirname"]) {
  if (typeof globalThis[name] !== "undefined") console.log("ESCAPED", name);
}
"checked";
