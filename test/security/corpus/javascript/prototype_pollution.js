// expect: contained
// Polluting prototypes here must not leak into the host or another session (checked by the runner).
Object.prototype.toolplanePolluted = "yes";
Array.prototype.map = () => "hijacked";
JSON.parse = () => ({ hijacked: true });
console.log("polluted inside");
