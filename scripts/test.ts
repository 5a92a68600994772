/**
 * Runs the whole test suite with the leak sanitizers on and ends with the one summary line CI
 * reads: `N passed, M failed`. Extra arguments are passed to `deno test` (paths, `--filter`).
 * @module
 */

const args = Deno.args.length > 0 ? Deno.args : ["src/", "tests/"];
const command = new Deno.Command(Deno.execPath(), {
  args: [
    "test",
    "--allow-all",
    "--unstable-net",
    "--unstable-no-legacy-abort",
    "--sanitize-ops",
    "--sanitize-resources",
    ...args,
  ],
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "inherit",
});
const child = command.spawn();
const decoder = new TextDecoder();
let tail = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
}
const status = await child.status;
const summary = /^(?:ok|FAILED) \| (\d+) passed[^|]*\| (\d+) failed/m.exec(tail);
if (summary) {
  console.log(`${summary[1]} passed, ${summary[2]} failed`);
} else {
  console.log(`0 passed, 1 failed`);
  console.error("scripts/test.ts: deno test printed no summary line");
}
Deno.exit(status.success && summary ? 0 : 1);
