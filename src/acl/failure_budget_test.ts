import assert from "node:assert/strict";
import { FailureBudget } from "./failure_budget.ts";

Deno.test("FailureBudget blocks an address after its limit, for one window, without touching others", () => {
  let now = 0;
  const budget = new FailureBudget({ limit: 3, windowMs: 1000, now: () => now });
  assert.equal(budget.fail("198.51.100.1"), false);
  assert.equal(budget.fail("198.51.100.1"), false);
  assert.equal(budget.blocked("198.51.100.1"), false);
  assert.equal(budget.fail("198.51.100.1"), true); // spent: reported once
  assert.equal(budget.blocked("198.51.100.1"), true);
  assert.equal(budget.fail("198.51.100.1"), false);
  assert.equal(budget.blocked("203.0.113.9"), false); // the real user elsewhere is unaffected
  now = 1000;
  assert.equal(budget.blocked("198.51.100.1"), false); // the window passed
});

Deno.test("FailureBudget forgets an address after a success and bounds its memory", () => {
  const budget = new FailureBudget({ limit: 2, maxAddresses: 100 });
  budget.fail("a");
  budget.succeed("a");
  budget.fail("a");
  assert.equal(budget.blocked("a"), false);
  for (let i = 0; i < 1000; i++) budget.fail(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(budget.size, 100);
});
