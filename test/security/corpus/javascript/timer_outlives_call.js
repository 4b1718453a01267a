// expect: contained
// Timers must not run after the call returns.
if (typeof setTimeout === "function") setTimeout(() => console.log("ESCAPED late timer"), 10);
if (typeof setInterval === "function") setInterval(() => console.log("ESCAPED late interval"), 10);
"scheduled";
