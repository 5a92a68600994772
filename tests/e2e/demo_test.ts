import assert from "node:assert/strict";
import { ROOT } from "../_harness/groom_process.ts";

Deno.test("deno task demo works: server, agent and sample backend answer through the tunnel", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-net",
      "--unstable-no-legacy-abort",
      `${ROOT}scripts/demo.ts`,
      "--self-test",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, stdout + new TextDecoder().decode(output.stderr));
  assert.equal(stdout, "demo self-test: 200 hello from the backend\n");
});
