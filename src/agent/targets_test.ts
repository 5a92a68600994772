import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compileTargets,
  hostHeader,
  parseTarget,
  pickBackend,
  rewriteRequest,
  selectTarget,
  type Target,
  type TargetConfig,
} from "./targets.ts";

function compileOne(config: Omit<TargetConfig, "name">): Target {
  const { targets, problems } = compileTargets([{ name: "t", ...config }]);
  assert.deepEqual(problems, []);
  const target = targets[0];
  assert.ok(target !== undefined);
  return target;
}

/** Rewrites `requestTarget` (path and query as sent) with the first backend. */
function rewrite(config: Omit<TargetConfig, "name">, requestTarget: string): string {
  const query = requestTarget.indexOf("?");
  const rawPath = query < 0 ? requestTarget : requestTarget.slice(0, query);
  const result = rewriteRequest(compileOne(config), {
    target: requestTarget,
    path: decodeURIComponent(rawPath),
  }, { random: () => 0 });
  return result.requestTarget;
}

Deno.test("parseTarget() reads weighted hosts and the template (AGT-5)", () => {
  const parsed = parseTarget("http://3@10.0.0.1:8000|1@10.0.0.2:8000/api");
  assert.deepEqual(parsed, {
    scheme: "http",
    backends: [
      { host: "10.0.0.1", port: 8000, weight: 3, hostPort: "10.0.0.1:8000" },
      { host: "10.0.0.2", port: 8000, weight: 1, hostPort: "10.0.0.2:8000" },
    ],
    totalWeight: 4,
    template: "/api",
  });
});

Deno.test("parseTarget() defaults ports, clamps weights and reads IPv6 (AGT-5, AGT-9)", () => {
  const cases: [string, { host: string; port: number; weight: number }[], string][] = [
    ["http://localhost", [{ host: "localhost", port: 80, weight: 1 }], ""],
    ["https://localhost", [{ host: "localhost", port: 443, weight: 1 }], ""],
    ["http://0@a|500@b:81", [{ host: "a", port: 80, weight: 1 }, {
      host: "b",
      port: 81,
      weight: 100,
    }], ""],
    [
      "http://x@a:1|-3@b",
      [{ host: "a", port: 1, weight: 1 }, { host: "b", port: 80, weight: 1 }],
      "",
    ],
    ["http://user@host:8080", [{ host: "host", port: 8080, weight: 1 }], ""],
    ["http://[::1]:8000/x ", [{ host: "::1", port: 8000, weight: 1 }], "/x"],
    ["http://[::1]", [{ host: "::1", port: 80, weight: 1 }], ""],
    ["http://a| |2@b/p?q=1", [{ host: "a", port: 80, weight: 1 }, {
      host: "b",
      port: 80,
      weight: 2,
    }], "/p?q=1"],
  ];
  for (const [text, hosts, template] of cases) {
    const parsed = parseTarget(text);
    assert.ok(typeof parsed !== "string", `${text}: ${parsed}`);
    assert.deepEqual(
      parsed.backends.map(({ host, port, weight }) => ({ host, port, weight })),
      hosts,
      text,
    );
    assert.equal(parsed.template, template, text);
  }
  assert.equal(cases.length, 8);
  const ipv6 = parseTarget("http://[::1]:8000");
  assert.ok(typeof ipv6 !== "string");
  assert.equal(ipv6.backends[0]?.hostPort, "[::1]:8000");
});

Deno.test("parseTarget() reports unusable targets (AGT-5, DIR-6)", () => {
  const bad = [
    "HTTP://upper.case",
    "ftp://host",
    "host:80",
    "http://",
    "http:// | /path",
    "http://host:80?x=1", // `?` right after the host is swallowed into HOSTS
    "http://host:99999",
    "http://host:0",
    "http://host:8a",
    "http://[::1",
    "http://[zz]:80",
    "http://ho st",
    "http://host/bad%zzescape",
  ];
  for (const text of bad) {
    const parsed = parseTarget(text);
    assert.equal(typeof parsed, "string", text);
  }
  assert.equal(bad.length, 13);
});

Deno.test("compileTargets() drops and reports bad targets and regexes (DIR-6, AGT-4)", () => {
  const { targets, problems } = compileTargets([
    { name: "ok", target: "http://a" },
    { name: "scheme", target: "gopher://a" },
    { name: "method", target: "http://a", method: "(" },
    { name: "path", target: "http://a", path: "[" },
    { name: "ok2", target: "https://b", path: "^/x" },
  ]);
  assert.deepEqual(targets.map((target) => target.name), ["ok", "ok2"]);
  assert.equal(problems.length, 3);
  assert.match(problems[0] ?? "", /^Cannot use target "scheme": target "gopher:\/\/a"/);
  assert.match(problems[1] ?? "", /^Cannot use target "method": invalid method regex "\("/);
  assert.match(problems[2] ?? "", /^Cannot use target "path": invalid path regex "\["/);
});

Deno.test("compileTargets() compiles the method regex case-insensitively, escapes intact (ODD-26)", () => {
  const target = compileOne({ target: "http://a", method: "^g\\w+$" });
  assert.equal(selectTarget([target], "GET", "/"), target);
  assert.equal(selectTarget([target], "get", "/"), target);
  assert.equal(selectTarget([target], "POST", "/"), undefined);
  const digits = compileOne({ target: "http://a", method: "^M\\d$" });
  assert.equal(selectTarget([digits], "M1", "/"), digits);
  assert.equal(selectTarget([digits], "MX", "/"), undefined);
});

Deno.test("compileTargets() accepts Go regexp spellings (?P<name>) and (?i) (AGT-7)", () => {
  const target = compileOne({ target: "http://a/$first", path: "(?i)^/(?P<first>[a-z]+)$" });
  assert.equal(selectTarget([target], "GET", "/ABC"), target);
  const result = rewriteRequest(target, { target: "/ABC", path: "/ABC" });
  assert.equal(result.requestTarget, "/ABC");
  // `(?P<` inside a character class or escaped is left alone.
  const literal = compileOne({ target: "http://a", path: "^/[(?P<]+$" });
  assert.equal(selectTarget([literal], "GET", "/(?P<"), literal);
});

Deno.test("compileTargets() reads the host rule and the insecure flag (AGT-10, ODD-11)", () => {
  const rules = compileTargets([
    { name: "a", target: "http://a" },
    { name: "b", target: "http://a", host: "target" },
    { name: "c", target: "http://a", host: "remote" },
    { name: "d", target: "http://a", host: "forwarded" },
    { name: "e", target: "http://a", host: "" },
    { name: "f", target: "http://a", host: "My.Vhost.Example", insecure: true },
  ]).targets;
  assert.deepEqual(rules.map((target) => target.hostRule), [
    { kind: "target" },
    { kind: "target" },
    { kind: "client" },
    { kind: "client" },
    { kind: "none" },
    { kind: "literal", value: "my.vhost.example" },
  ]);
  assert.deepEqual(rules.map((target) => target.insecure), [
    false,
    false,
    false,
    false,
    false,
    true,
  ]);
});

Deno.test("selectTarget() takes the first target whose regexes match (AGT-4)", () => {
  const { targets } = compileTargets([
    { name: "posts", target: "http://a", method: "^post$" },
    { name: "api", target: "http://b", path: "^/api/" },
    { name: "unanchored", target: "http://c", path: "static" },
    { name: "rest", target: "http://d" },
  ]);
  const cases: [string, string, string | undefined][] = [
    ["POST", "/api/x", "posts"],
    ["GET", "/api/x", "api"],
    ["GET", "/x/static/y", "unanchored"],
    ["GET", "/other", "rest"],
  ];
  for (const [method, path, name] of cases) {
    assert.equal(selectTarget(targets, method, path)?.name, name, `${method} ${path}`);
  }
  assert.equal(selectTarget([], "GET", "/"), undefined);
  assert.equal(selectTarget(targets.slice(0, 2), "GET", "/other"), undefined);
});

Deno.test("pickBackend() draws by cumulative weight (AGT-6)", () => {
  const parsed = parseTarget("http://3@a:1|1@b:2");
  assert.ok(typeof parsed !== "string");
  // 12 evenly spread draws: 9 for weight 3, 3 for weight 1 (the observed 9 vs 3).
  const counts = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const backend = pickBackend(parsed, () => i / 12);
    counts.set(backend.host, (counts.get(backend.host) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(counts), { a: 9, b: 3 });
  assert.equal(pickBackend(parsed, () => 0.7499).host, "a");
  assert.equal(pickBackend(parsed, () => 0.75).host, "b");
  assert.equal(pickBackend(parsed, () => 0.999999).host, "b");
});

Deno.test("rewriteRequest() reproduces the observed rewrites (AGT-7, AGT-8)", () => {
  const cases: [Omit<TargetConfig, "name">, string, string][] = [
    [
      { path: "^/static/(.+)$", target: "http://127.0.0.1:8000/bucket/$1?user=johndoe&drop=" },
      "/static/a/b.css?keep=1&drop=2",
      "/bucket/a/b.css?keep=1&user=johndoe",
    ],
    [{ path: "^/strip", target: "http://127.0.0.1:8000" }, "/strip/this/path", "/this/path"],
    [
      { path: "^/fixed", target: "http://127.0.0.1:8000/always" },
      "/fixed/abc?q=1",
      "/always/abc?q=1",
    ],
    [{ target: "http://127.0.0.1:8000" }, "/any/Path%20x?b=2&a=1", "/any/Path%20x?b=2&a=1"],
    [
      { path: "^/static/.+$", target: "https://localhost:4443/bucket/statics?user=johndoe" },
      "/static/img/x.png?z=9&a=b+c",
      "/bucket/statics?a=b+c&user=johndoe&z=9",
    ],
    // Without a path regex the template is the path, verbatim (AGT-7).
    [{ target: "http://a/api" }, "/whatever?x=1", "/api?x=1"],
    [{ path: "^/p", target: "http://a/p?add=1" }, "/p?k=v", "/p?add=1&k=v"],
    // Every match is replaced, not just the first (AGT-7).
    [{ path: "o", target: "http://a/0" }, "/foo/bo", "/f/0/0/b/0"],
    // Re-encoding: sorted keys, Go query escaping, path escaping.
    [
      { path: "^/q", target: "http://a/q" },
      "/q?b=%7E*&a=x%20y&a=z",
      "/q?a=x+y&a=z&b=~%2A",
    ],
    [{ path: "^/e", target: "http://a/e" }, "/e/%C3%A9%20!", "/e/%C3%A9%20%21"],
    [{ path: "^/", target: "http://a/" }, "/x?a=1;b=2&c=3", "/x?c=3"],
  ];
  for (const [config, input, expected] of cases) {
    assert.equal(rewrite(config, input), expected, `${config.target} ${input}`);
  }
  assert.equal(cases.length, 11);
});

Deno.test("rewriteRequest() expands templates with Go's rules (AGT-7)", () => {
  const path = "^/(?<word>[a-z]+)/([0-9]+)$";
  const cases: [string, string][] = [
    ["/$1", "/abc"], // a named group is numbered too
    ["/${1}", "/abc"],
    ["/$2", "/42"],
    ["/$3", "/"], // out of range: nothing
    ["/$1x", "/"], // group "1x" does not exist
    ["/${1}x", "/abcx"],
    ["/$word", "/abc"],
    ["/${word}-$2", "/abc-42"],
    ["/$word_", "/"], // greedy name "word_"
    ["/$$1", "/$1"],
    ["/$01", "/"], // leading zero: a name, not a number
    ["/$-", "/$-"], // malformed: keeps the `$`
    ["/${word", "/$%7Bword"],
    ["/$0", "/abc/42"],
  ];
  for (const [template, expected] of cases) {
    assert.equal(rewrite({ path, target: `http://a${template}` }, "/abc/42"), expected, template);
  }
  assert.equal(cases.length, 14);
});

Deno.test("rewriteRequest() keeps the target's authority whatever the client path (ODD-41)", () => {
  const config = { path: "^/prefix", target: "http://127.0.0.1:8000" };
  const cases: [string, string, string][] = [
    ["/prefix@evil:1/x", "/prefix@evil:1/x", "/@evil:1/x"],
    ["/prefix%40evil:1/x", "/prefix@evil:1/x", "/@evil:1/x"],
    ["/prefix//evil.example/x", "/prefix//evil.example/x", "/evil.example/x"],
    ["/prefix%3Fa=1", "/prefix?a=1", "/%3Fa=1"],
    ["/prefix%23frag", "/prefix#frag", "/%23frag"],
    ["/prefix%2525", "/prefix%25", "/%2525"],
    ["/prefix", "/prefix", "/prefix"], // nothing left: the request-target is unchanged (AGT-8)
  ];
  for (const [requestTarget, path, expected] of cases) {
    const result = rewriteRequest(compileOne(config), { target: requestTarget, path });
    assert.equal(result.scheme, "http");
    assert.equal(result.backendHost, "127.0.0.1");
    assert.equal(result.port, 8000);
    assert.equal(result.requestTarget, expected, requestTarget);
    assert.equal(new URL(result.requestTarget, "http://127.0.0.1:8000").host, "127.0.0.1:8000");
  }
  assert.equal(cases.length, 7);
  // A client value inserted after the template's `?` cannot add parameters either.
  const query = compileOne({ path: "^/id/(.*)$", target: "http://a/lookup?id=$1&role=user" });
  const result = rewriteRequest(query, { target: "/id/x&role=admin", path: "/id/x&role=admin" });
  assert.equal(result.requestTarget, "/lookup?id=x%26role%3Dadmin&role=user");
});

const tailArbitrary = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.array(
    fc.constantFrom(
      "@",
      ":",
      "/",
      "?",
      "#",
      "%",
      "40",
      "2F",
      "&",
      "=",
      "a",
      ".",
      "\\",
      " ",
      "é",
      "$1",
    ),
  )
    .map((parts) => parts.join("")),
);

function percentEncode(text: string): string {
  return [...new TextEncoder().encode(text)]
    .map((byte) => `%${byte.toString(16).padStart(2, "0")}`)
    .join("");
}

Deno.test("rewriteRequest() never changes scheme, host or port, for any client path (ODD-41)", () => {
  const targets = compileTargets([
    { name: "strip", target: "http://127.0.0.1:8000", path: "^/p" },
    { name: "group", target: "https://[::1]:8443/b/$1?u=$1", path: "^/s(.*)$" },
    { name: "every", target: "http://backend/$0", path: "." },
  ]).targets;
  assert.equal(targets.length, 3);
  fc.assert(
    fc.property(fc.constantFrom(...targets), tailArbitrary, (target, tail) => {
      const path = (target.name === "every" ? "/" : target.name === "strip" ? "/p" : "/s") + tail;
      const result = rewriteRequest(target, {
        target: "/" + percentEncode(path.slice(1)) + "?k=v",
        path,
      });
      const backend = target.backends[0];
      assert.ok(backend !== undefined);
      assert.equal(result.scheme, target.scheme);
      assert.equal(result.backendHost, backend.host);
      assert.equal(result.port, backend.port);
      assert.ok(result.requestTarget.startsWith("/"));
      assert.ok(!result.requestTarget.startsWith("//"));
      const base = `${target.scheme}://${backend.hostPort}`;
      assert.equal(new URL(result.requestTarget, base).origin, new URL(base).origin);
    }),
    { numRuns: 500 },
  );
});

Deno.test("hostHeader() follows the target's host rule (AGT-10)", () => {
  const { targets } = compileTargets([
    { name: "default", target: "http://127.0.0.1:8000" },
    { name: "port80", target: "http://localhost" },
    { name: "remote", target: "http://a", host: "remote" },
    { name: "forwarded", target: "http://a", host: "forwarded" },
    { name: "literal", target: "http://a", host: "My.Vhost.Example" },
    { name: "none", target: "http://a", host: "" },
  ]);
  const seen = targets.map((target) => {
    const { backendHostPort } = rewriteRequest(target, { target: "/", path: "/" });
    return hostHeader(target, { clientHost: "127.0.0.1:8443", backendHostPort });
  });
  assert.deepEqual(seen, [
    "127.0.0.1:8000",
    "localhost:80",
    "127.0.0.1:8443",
    "127.0.0.1:8443",
    "my.vhost.example",
    undefined,
  ]);
  const remote = targets[2];
  assert.ok(remote !== undefined);
  assert.equal(hostHeader(remote, { clientHost: undefined, backendHostPort: "a:80" }), undefined);
});
