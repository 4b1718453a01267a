import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { PythonReplica, pythonBackendOptions } from "../../../../test/support/python-backend.js";
import { NotFoundError } from "../../../runtime/src/index.js";
import type { ExecutionOutcome } from "../backend.js";
import { DiskCheckpointStore } from "../checkpoint-store.js";

const MIB = 1024 * 1024;

/** One code service's worth of Python sessions on a shared checkpoint directory. */
function newReplica(dir: string, maxLiveKernels = 64, maxBytes = 16 * MIB): PythonReplica {
  return new PythonReplica(
    pythonBackendOptions({
      start: "auto",
      preload: ["numpy", "PIL.Image", "PIL.ImageOps", "matplotlib.pyplot"],
      forkPoolSize: 2,
      checkpoints: { store: new DiskCheckpointStore(dir, 512 * MIB), maxBytes, timeoutMs: 5000, maxLiveKernels },
    }),
  );
}

/** Runs a cell and returns its stdout, failing on a model error. */
async function ok(replica: PythonReplica, sessionId: string, code: string): Promise<ExecutionOutcome> {
  const outcome = await replica.run(sessionId, code);
  assert.equal(outcome.failure, undefined, `${code}\n${outcome.stderr}`);
  return outcome;
}

const STATE = [
  "import numpy as np",
  "crop = image_1.crop((0, 0, 20, 10))",
  "arrays = [np.arange(1000) * k for k in range(3)]",
  "big = np.ones(262144)",
  "table = {'a': 1, 'nested': {'b': [1, 2, 3]}}",
  "square = lambda x: x * x",
  "handle = open('/tmp/notes.txt', 'w')",
  "def total(): return sum(int(a.sum()) for a in arrays) + table['a']",
].join("\n");

const CHECK =
  "print(crop.size, arrays[2][10] + int(big.sum()) - 262144, table['nested']['b'], square(7), total(), 'handle' in globals())";

describe("Python checkpoints (real sandboxes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "toolplane-checkpoints-test-"));
  let png: Buffer;
  const image = () => [{ name: "image_1", data: png, mimeType: "image/png", width: 40, height: 30 }];

  before(async () => {
    png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#00ff00" } })
      .png()
      .toBuffer();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a session whose interpreter is killed between cells comes back from its checkpoint, minus the open file", async () => {
    const replica = newReplica(dir);
    await replica.start();
    try {
      const id = await replica.create(image());
      await ok(replica, id, STATE);
      const expected = (await ok(replica, id, CHECK)).stdout;
      assert.match(expected, /\(20, 10\) 20 \[1, 2, 3\] 49 1498501 True/);
      // The checkpoint is taken after the answer: give it its moment, then kill the interpreter from outside.
      await ok(replica, id, "x = 1");
      await replica.backend.checkpointsSettled();
      const pids = replica.backend.sessionPids();
      assert.equal(pids.length, 1);
      process.kill(pids[0] as number, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 200));

      const after = await ok(replica, id, CHECK.replace("'handle' in globals()", "x"));
      assert.match(after.stdout, /\(20, 10\) 20 \[1, 2, 3\] 49 1498501 1/);
      assert.equal(after.restored?.reason, "kernel_lost");
      assert.equal(after.restored?.complete, true);
      assert.deepEqual(after.restored?.lostNames, ["handle"]);
      assert.match(
        after.stderr,
        /restored from its last checkpoint; these names could not be saved and are gone: handle/,
      );
      // The next cell runs on the restored interpreter without another note.
      const next = await ok(replica, id, "print(square(3))");
      assert.equal(next.stdout, "9\n");
      assert.equal(next.restored, undefined);
      assert.equal(next.stderr, "");
    } finally {
      await replica.stop();
    }
  });

  it("another replica on the same store continues a session it never held (restarted or moved)", async () => {
    const first = newReplica(dir);
    await first.start();
    let id: string;
    try {
      id = await first.create(image());
      await ok(first, id, STATE);
      await ok(first, id, "y = total()");
    } finally {
      // A replica that stops (rolled out, scaled in) leaves its sessions' checkpoints for the others.
      await first.stop();
    }
    const second = newReplica(dir);
    await second.start();
    try {
      const moved = await ok(second, id, "print(y, crop.size, square(5))");
      assert.equal(moved.stdout, "1498501 (20, 10) 25\n");
      assert.equal(moved.restored?.reason, "moved");
      await assert.rejects(second.run("00000000-0000-4000-8000-000000000000", "1"), NotFoundError);
    } finally {
      await second.stop();
    }
  });

  it("above the live-interpreter budget, idle sessions hibernate and come back on their next call", async () => {
    const replica = newReplica(dir, 2);
    await replica.start();
    try {
      const ids = [];
      for (let i = 0; i < 4; i++) {
        const id = await replica.create();
        await ok(replica, id, `n = ${i}\nhistory = [n]`);
        ids.push(id);
      }
      const counts = replica.backend.kernelCounts;
      assert.equal(counts.open, 4);
      assert.ok(counts.live <= 3, `live kernels ${counts.live}`);
      const reasons = [];
      for (const [i, id] of ids.entries()) {
        const outcome = await ok(replica, id, "history.append(n * 10)\nprint(history)");
        assert.equal(outcome.stdout, `[${i}, ${i * 10}]\n`);
        reasons.push(outcome.restored?.reason);
      }
      assert.ok(reasons.includes("hibernated"), `reasons ${reasons.join(",")}`);
      assert.ok(replica.backend.kernelCounts.live <= 3);
    } finally {
      await replica.stop();
    }
  });

  it("a namespace over the size limit is not saved and the model is told, without failing the cell", async () => {
    const replica = newReplica(dir, 64, 256 * 1024);
    await replica.start();
    try {
      const id = await replica.create();
      await ok(replica, id, "big = bytes(1024 * 1024)");
      const next = await ok(replica, id, "print(len(big))");
      assert.equal(next.stdout, "1048576\n");
      assert.match(next.stderr, /too large to save \(over the checkpoint limit of 262144 bytes\)/);
    } finally {
      await replica.stop();
    }
  });

  it("a pickle that runs code on restore runs it only inside the sandbox, and a crashing one starts fresh", async () => {
    const replica = newReplica(dir);
    await replica.start();
    try {
      const id = await replica.create();
      await ok(
        replica,
        id,
        [
          "import os",
          "class Trap:",
          "    def __reduce__(self):",
          "        return (os.system, ('touch /tmp/escaped-on-restore',))",
          "trap = Trap()",
          "marker = 'kept'",
        ].join("\n"),
      );
      await ok(replica, id, "z = 2");
      await replica.backend.checkpointsSettled();
      process.kill(replica.backend.sessionPids()[0] as number, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const restored = await ok(replica, id, "import os\nprint(marker, z, os.path.exists('/tmp/escaped-on-restore'))");
      // The payload ran in the fresh sandbox's own /tmp, never on the host.
      assert.equal(restored.stdout, "kept 2 True\n");
      assert.equal(restored.restored?.complete, true);
      assert.equal(await import("node:fs").then((fs) => fs.existsSync("/tmp/escaped-on-restore")), false);

      const crashing = await replica.create();
      await ok(
        replica,
        crashing,
        "import os\nclass Bomb:\n    def __reduce__(self):\n        return (os._exit, (3,))\nbomb = Bomb()\nkeep = 1",
      );
      await ok(replica, crashing, "w = 1");
      await replica.backend.checkpointsSettled();
      const pids = replica.backend.sessionPids();
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const fresh = await replica.run(crashing, "print('keep' in globals())");
      assert.equal(fresh.failure, undefined, fresh.stderr);
      assert.equal(fresh.stdout, "False\n");
      assert.match(fresh.stderr, /restarted: variables and imports from earlier cells are lost/);
    } finally {
      await replica.stop();
    }
  });

  it("restored numpy arrays (out of band in the checkpoint) are writable and keep their layout; a plain-pickle checkpoint still loads", async () => {
    const replica = newReplica(dir);
    await replica.start();
    try {
      const id = await replica.create(image());
      await ok(
        replica,
        id,
        "import numpy as np\nc = np.arange(262144.0)\nf = np.asfortranarray(np.arange(12.0).reshape(3, 4))\nstrided = np.arange(20)[::3]",
      );
      await replica.backend.checkpointsSettled();
      const stored = readFileSync(join(dir, id, "checkpoint.bin"));
      assert.equal(stored.subarray(0, 4).toString("latin1"), "TPCK", "numpy buffers travel out of band");
      process.kill(replica.backend.sessionPids()[0] as number, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await ok(
        replica,
        id,
        "c[0] = -1; f[0, 0] = -1\nprint(c[:2], c.flags.writeable, f.flags.f_contiguous, f[0], strided, c.ctypes.data % 16)",
      );
      assert.equal(after.restored?.complete, true, after.stderr);
      assert.equal(after.stdout, "[-1.  1.] True True [-1.  1.  2.  3.] [ 0  3  6  9 12 15 18] 0\n");

      // A checkpoint written before the container format (one plain pickle) is still read.
      const legacy = execFileSync(process.env.TOOLPLANE_CODE_PYTHON_PATH ?? "/usr/bin/python3", [
        "-c",
        "import pickle, random, sys, numpy as np\n" +
          "sys.stdout.buffer.write(pickle.dumps({'version': 1, 'names': {'legacy': np.arange(3)}, 'lost': {}, " +
          "'random': (random.getstate(), np.random.get_state())}, protocol=5))",
      ]);
      await replica.backend.checkpointsSettled();
      writeFileSync(join(dir, id, "checkpoint.bin"), legacy);
      process.kill(replica.backend.sessionPids()[0] as number, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const old = await ok(replica, id, "print(legacy.tolist())");
      assert.equal(old.restored?.complete, true, old.stderr);
      assert.equal(old.stdout, "[0, 1, 2]\n");
    } finally {
      await replica.stop();
    }
  });
});
