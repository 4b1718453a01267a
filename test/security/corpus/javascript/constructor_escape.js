// expect: contained
// The classic vm escape through a host object's constructor chain.
let reached;
try {
  reached = this.constructor.constructor("return typeof process !== 'undefined' ? process : undefined")();
} catch (error) {
  reached = undefined;
}
if (reached) console.log("ESCAPED", typeof reached.mainModule);
try {
  const viaConsole = console.log.constructor("return typeof process !== 'undefined' ? process : undefined")();
  if (viaConsole) console.log("ESCAPED via console");
} catch {}
"checked";
