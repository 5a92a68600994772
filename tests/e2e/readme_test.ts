import assert from "node:assert/strict";
import { join } from "node:path";
import { directiveReference, withReference } from "../../scripts/directives.ts";
import { ROOT } from "../_harness/groom_process.ts";

/** Table cells without the padding `deno fmt` adds. */
function normalize(text: string): string {
  return text.replace(/ *\| */g, "|").replace(/-{3,}/g, "---").replace(/\n{2,}/g, "\n");
}

Deno.test("README's directive reference matches the settings table (run scripts/directives.ts --write)", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.equal(normalize(withReference(readme, directiveReference())), normalize(readme));
});

Deno.test("README starts with the two commands that set up, run and test groom", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.match(readme, /sh scripts\/deno\.sh task demo/);
  assert.match(readme, /sh scripts\/deno\.sh task test/);
  const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
  assert.ok(tasks.demo && tasks.test, "deno.json defines the demo and test tasks");
});
