// expect: contained
// Module loading is not available.
let loaded = false;
try {
  import("fs").then(() => {
    loaded = true;
  });
} catch {}
if (loaded) console.log("ESCAPED import");
"checked";
