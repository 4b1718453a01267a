// expect: contained
// Stack-trace hooks must not hand out host frames or functions.
Error.prepareStackTrace = (error, frames) => {
  for (const frame of frames) {
    const fn = frame.getFunction && frame.getFunction();
    if (fn && typeof fn.constructor === "function") {
      try {
        const p = fn.constructor("return typeof process !== 'undefined' ? process : undefined")();
        if (p) console.log("ESCAPED via stack frame");
      } catch {}
    }
  }
  return "";
};
try {
  null.x;
} catch (error) {
  String(error.stack);
}
"checked";
