/** Tests of THE settings table: defaults, clamping, each directive, problems (section 3). @module */

import assert from "node:assert/strict";
import { type ConfObject, type ConfPosition, parseConf } from "./syntax.ts";
import { lookupValue } from "./tree.ts";
import {
  AGENT_DOMAIN_SETTINGS,
  AGENT_SETTINGS,
  directives,
  type FileKind,
  formatProblem,
  maskCredential,
  maskSecret,
  type ParsedTree,
  parseListenAddress,
  type Problem,
  readAgentConfig,
  readAgentDomainConfig,
  readMode,
  readServerConfig,
  readServerDomainConfig,
  renderSettings,
  SERVER_DOMAIN_SETTINGS,
  SERVER_SETTINGS,
  SETTINGS_BY_KIND,
  TARGET_NAME_PLACEHOLDER,
  TARGET_SETTINGS,
} from "./settings.ts";

const KINDS: readonly FileKind[] = ["server", "agent", "server-domain", "agent-domain"];

/** A tree with `groom` holding `section`. */
function groom(section: ConfObject): { tree: ConfObject } {
  return { tree: { groom: section } };
}

/** The messages of the problems at `key`. */
function messagesAt(problems: readonly Problem[], key: string): string[] {
  return problems.filter((problem) => problem.key === key).map((problem) => problem.message);
}

Deno.test("readServerConfig() gives groom's defaults for an empty file (DIR-1)", () => {
  const { config, problems } = readServerConfig({ tree: {} });
  assert.deepEqual({ ...config, listen: [...config.listen] }, {
    mode: "agent",
    listen: [],
    headersSize: 65536,
    idleTimeoutMs: 15000,
    readTimeoutMs: 10000,
    bodyTimeoutMs: 60000,
    writeTimeoutMs: 20000,
    bodySize: 8388608,
    service: "/.well-known/groom-agent",
    domains: "/etc/groom/domains",
    unavailable: 404,
    transaction: true,
    logSystem: "console(output=stdout)",
    logAccess: "",
    logDisconnected: false,
    sessionKey: "",
    sessionLifetimeMs: 1_200_000,
  });
  assert.ok(Object.isFrozen(config));
  assert.deepEqual(problems.map((problem) => problem.message), [
    "No listen entry: the server accepts no connection",
  ]);
});

Deno.test("readAgentConfig() gives groom's defaults for an empty file (DIR-5)", () => {
  const { config, problems } = readAgentConfig({ tree: {} });
  assert.deepEqual({ ...config }, {
    mode: "agent",
    connectTimeoutMs: 5000,
    readTimeoutMs: 10000,
    writeTimeoutMs: 20000,
    domains: "/etc/groom/domains",
    logSystem: "console(output=stdout)",
    logAccess: "",
  });
  assert.deepEqual(problems, []);
});

Deno.test("domain readers give groom's defaults, inheriting body_size and transaction (DIR-4, DIR-6)", () => {
  const server = readServerDomainConfig({ tree: {} }, { name: "www.domain.com" });
  assert.deepEqual({ ...server.config }, {
    name: "www.domain.com",
    active: false,
    secret: "",
    concurrency: 20,
    bodySize: 8388608,
    transaction: true,
    forward: [],
    networks: [],
    clientsNetworks: [],
    clientsRanges: [],
    clientsCredentials: [],
    clientsBanner: "groom",
  });
  assert.deepEqual(server.problems, []);
  const inherited = readServerDomainConfig({ tree: {} }, {
    name: "a",
    defaults: { bodySize: 65536, transaction: false },
  });
  assert.equal(inherited.config.bodySize, 65536);
  assert.equal(inherited.config.transaction, false);
  const agent = readAgentDomainConfig({ tree: {} }, { name: "www.domain.com" });
  assert.deepEqual({ ...agent.config, targets: [...agent.config.targets] }, {
    name: "www.domain.com",
    active: false,
    secret: "",
    concurrency: 20,
    bodySize: 8388608,
    transaction: true,
    remote: "www.domain.com:443",
    service: "/.well-known/groom-agent",
    insecure: false,
    targets: [],
  });
  assert.deepEqual(agent.problems, []);
});

Deno.test("server directives are read from their keys, trimmed where groom trims (DIR-1)", () => {
  const { config, problems } = readServerConfig(groom({
    mode: "server",
    listen: ["*:443,/etc/groom/cert.pem,/etc/groom/key.pem"],
    headers_size: "128kB",
    idle_timeout: "30s",
    read_timeout: "20s",
    body_timeout: "5mn",
    write_timeout: "40s",
    body_size: "16MB",
    service: "  /agent  ",
    domains: "/srv/domains",
    unavailable: "503",
    transaction: "no",
    log: { system: "file(path=/tmp/x.log)", access: "console()", disconnected: "yes" },
  }));
  assert.deepEqual(problems, []);
  assert.equal(config.mode, "server");
  assert.equal(config.headersSize, 131072);
  assert.equal(config.idleTimeoutMs, 30000);
  assert.equal(config.readTimeoutMs, 20000);
  assert.equal(config.bodyTimeoutMs, 300000);
  assert.equal(config.writeTimeoutMs, 40000);
  assert.equal(config.bodySize, 16777216);
  assert.equal(config.service, "/agent");
  assert.equal(config.domains, "/srv/domains");
  assert.equal(config.unavailable, 503);
  assert.equal(config.transaction, false);
  assert.equal(config.logSystem, "file(path=/tmp/x.log)");
  assert.equal(config.logAccess, "console()");
  assert.equal(config.logDisconnected, true);
});

Deno.test("agent directives are read from their keys (DIR-5)", () => {
  const { config, problems } = readAgentConfig(groom({
    mode: "agent",
    connect_timeout: "10s",
    read_timeout: "30s",
    write_timeout: "01:00",
    domains: "conf/agent",
    log: { system: "console(output=stderr)", access: "" },
  }));
  assert.deepEqual(problems, []);
  assert.equal(config.connectTimeoutMs, 10000);
  assert.equal(config.readTimeoutMs, 30000);
  assert.equal(config.writeTimeoutMs, 60000);
  assert.equal(config.domains, "conf/agent");
  assert.equal(config.logSystem, "console(output=stderr)");
});

Deno.test("server domain directives are read, list items trimmed and empty ones dropped (DIR-4)", () => {
  const { config, problems } = readServerDomainConfig(
    groom({
      active: "yes",
      secret: "  s3cret  ",
      concurrency: "50",
      body_size: "1MB",
      transaction: "false",
      forward: ["10.0.0.0/8"],
      networks: [" 192.0.2.0/24 ", "", "2001:db8::/32"],
      clients: {
        networks: ["127.0.0.0/8"],
        ranges: ["mon-fri 08:00-19:00"],
        credentials: [
          "john:$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1",
          "@/etc/groom/users",
        ],
        banner: " private ",
      },
    }),
    { name: "www.domain.com" },
  );
  assert.deepEqual(problems, []);
  assert.equal(config.active, true);
  assert.equal(config.secret, "s3cret");
  assert.equal(config.concurrency, 50);
  assert.equal(config.bodySize, 1048576);
  assert.equal(config.transaction, false);
  assert.deepEqual(config.forward, ["10.0.0.0/8"]);
  assert.deepEqual(config.networks, ["192.0.2.0/24", "2001:db8::/32"]);
  assert.deepEqual(config.clientsNetworks, ["127.0.0.0/8"]);
  assert.deepEqual(config.clientsRanges, ["mon-fri 08:00-19:00"]);
  assert.deepEqual(config.clientsCredentials, [
    "john:$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1",
    "@/etc/groom/users",
  ]);
  assert.equal(config.clientsBanner, "private");
  assert.ok(Object.isFrozen(config.networks));
});

Deno.test("agent domain directives and targets are read in targets.active order (DIR-6)", () => {
  const { config, problems } = readAgentDomainConfig(
    groom({
      active: "yes",
      secret: "s3cret",
      remote: " groom.example.com:8443 ",
      service: "/agent",
      insecure: "yes",
      targets: {
        active: ["api", "static"],
        static: { path: "^/static/(.+)$", target: "http://127.0.0.1:8000/bucket/$1" },
        api: {
          method: "^(get|post)$",
          path: "^/api/",
          host: " My.Vhost.Example ",
          target: " https://3@10.0.0.1:8443|1@10.0.0.2:8443 ",
          insecure: "yes",
        },
      },
    }),
    { name: "www.domain.com" },
  );
  assert.deepEqual(problems, []);
  assert.equal(config.remote, "groom.example.com:8443");
  assert.equal(config.service, "/agent");
  assert.equal(config.insecure, true);
  assert.deepEqual(config.targets.map((target) => ({ ...target })), [
    {
      name: "api",
      target: "https://3@10.0.0.1:8443|1@10.0.0.2:8443",
      method: "^(get|post)$", // kept as written: matched case-insensitively (ODD-26)
      path: "^/api/",
      host: "my.vhost.example", // lower-cased (AGT-10)
      insecure: true,
    },
    {
      name: "static",
      target: "http://127.0.0.1:8000/bucket/$1",
      method: "",
      path: "^/static/(.+)$",
      host: "target",
      insecure: false,
    },
  ]);
});

Deno.test("an explicitly empty target host is kept, meaning no Host header (AGT-10)", () => {
  const { config } = readAgentDomainConfig(
    groom({ targets: { active: ["a"], a: { host: "", target: "http://127.0.0.1" } } }),
    { name: "d" },
  );
  assert.equal(config.targets[0]?.host, "");
});

Deno.test("out-of-range values are clamped with a warning (CFG-18…CFG-20, ODD-31)", () => {
  const { config, problems } = readServerConfig(groom({
    mode: "server",
    listen: ["*:443,a.pem,a.key"],
    headers_size: "2MB",
    idle_timeout: "fast",
    read_timeout: "1h",
    body_size: "1kB",
    unavailable: "42",
  }));
  assert.equal(config.headersSize, 1048576);
  assert.equal(config.idleTimeoutMs, 5000); // an invalid duration becomes the minimum
  assert.equal(config.readTimeoutMs, 60000);
  assert.equal(config.bodySize, 65536);
  assert.equal(config.unavailable, 200);
  assert.deepEqual(messagesAt(problems, "groom.headers_size"), [
    "2MB is above the maximum 1MB: clamped to it",
  ]);
  assert.deepEqual(messagesAt(problems, "groom.idle_timeout"), [
    'Duration "fast" reads as 0s: no digits; 0s is below the minimum 5s: clamped to it',
  ]);
  assert.equal(messagesAt(problems, "groom.unavailable").length, 2); // clamped, then 200 < 400
  assert.ok(problems.every((problem) => problem.severity === "warning"));
});

Deno.test("booleans other than yes/no words are false with a warning (CFG-17)", () => {
  const { config, problems } = readServerDomainConfig(groom({ transaction: "y" }), { name: "d" });
  assert.equal(config.transaction, false);
  assert.match(messagesAt(problems, "groom.transaction")[0] ?? "", /not the default true/);
});

Deno.test("non-string values are ignored with a warning, as JSON numbers are (CFG-14)", () => {
  const { config, problems } = readServerDomainConfig(
    groom({ concurrency: 50, active: true, clients: { banner: ["x"] } }),
    { name: "d" },
  );
  assert.equal(config.concurrency, 20);
  assert.equal(config.active, false);
  assert.equal(config.clientsBanner, "groom");
  assert.match(messagesAt(problems, "groom.concurrency")[0] ?? "", /non-string value 50/);
  assert.match(messagesAt(problems, "groom.clients.banner")[0] ?? "", /found a list/);
});

Deno.test("a list written as a single string yields nothing and a warning (CFG-15)", () => {
  const { config, problems } = readServerConfig(groom({ mode: "server", listen: "*:443,a,b" }));
  assert.deepEqual(config.listen, []);
  assert.match(messagesAt(problems, "groom.listen")[0] ?? "", /^Expected a list, found the single/);
});

Deno.test("parseListenAddress() reads Go's host:port dialect after stripping * (TLS-2)", () => {
  const table: [string, string, number][] = [
    ["*:443", "", 443],
    [":443", "", 443],
    ["**:443", "", 443],
    ["127.0.0.1:8443", "127.0.0.1", 8443],
    ["4.3.2.1:443", "4.3.2.1", 443],
    ["[::1]:443", "::1", 443],
    ["[::]:8443", "::", 8443],
    ["localhost:0", "localhost", 0],
  ];
  for (const [address, hostname, port] of table) {
    assert.deepEqual(parseListenAddress(address), { hostname, port }, address);
  }
  for (const bad of ["127.0.0.1", "::1:443", "*:https", "*:70000", "[::1]", ""]) {
    assert.throws(() => parseListenAddress(bad), SyntaxError, bad);
  }
});

Deno.test("listen entries of both forms give listeners with certificates (TLS-1, TLS-5)", () => {
  const { config, problems } = readServerConfig(groom({
    mode: "server",
    listen: [
      " *:443 , /etc/groom/cert.pem , /etc/groom/key.pem ",
      "4.3.2.1:443,groom.certificates",
    ],
    certificates: [
      "^api\\.domain2\\.com$ /etc/certs/api.pem /etc/certs/api.key",
      "  * /etc/groom/cert.pem   /etc/groom/key.pem ",
    ],
  }));
  assert.deepEqual(problems, []);
  assert.deepEqual(config.listen.map((entry) => ({ ...entry })), [
    {
      raw: " *:443 , /etc/groom/cert.pem , /etc/groom/key.pem ",
      address: "*:443",
      hostname: "",
      port: 443,
      certificatesText: "/etc/groom/cert.pem,/etc/groom/key.pem",
      certificates: [{ pattern: "*", cert: "/etc/groom/cert.pem", key: "/etc/groom/key.pem" }],
    },
    {
      raw: "4.3.2.1:443,groom.certificates",
      address: "4.3.2.1:443",
      hostname: "4.3.2.1",
      port: 443,
      certificatesText: "groom.certificates",
      certificatesPath: "groom.certificates",
      certificates: [
        { pattern: "^api\\.domain2\\.com$", cert: "/etc/certs/api.pem", key: "/etc/certs/api.key" },
        { pattern: "*", cert: "/etc/groom/cert.pem", key: "/etc/groom/key.pem" },
      ],
    },
  ]);
});

Deno.test("bad listen entries are dropped and reported, not silently ignored (TLS-1, TLS-5)", () => {
  const { config, problems } = readServerConfig(groom({
    mode: "server",
    listen: [
      "*:443", // one piece
      "localhost,a.pem,a.key", // no port
      "*:443,groom.missing", // empty certificate list
      "*:8443,conf/cert.pem", // a file where a path is expected
      "*:9443,groom.sni,x", // an empty key piece? no: cert=groom.sni key=x, kept
      "*:10443,a.pem,a.key,extra",
      "*:11443,groom.sni",
    ],
    sni: ["only-two tokens", "( bad.pem bad.key", "* ok.pem ok.key"],
  }));
  assert.deepEqual(config.listen.map((entry) => entry.port), [443, 8443, 9443, 10443, 11443]);
  const errors = problems.filter((problem) => problem.severity === "error");
  assert.deepEqual(errors.map((problem) => problem.key), [
    "groom.listen.0",
    "groom.listen.1",
    "groom.listen.2",
    "groom.listen.3",
  ]);
  assert.match(errors[1]?.message ?? "", /missing port: entry ignored/);
  assert.match(errors[3]?.message ?? "", /looks like a file: write ADDRESS,CERT,KEY/);
  assert.deepEqual(messagesAt(problems, "groom.listen.5"), [
    'Listen entry "*:10443,a.pem,a.key,extra" has extra pieces: ignored',
  ]);
  assert.deepEqual(messagesAt(problems, "groom.sni.0"), [
    'Certificate entry "only-two tokens" is not "PATTERN CERT KEY": ignored',
  ]);
  assert.match(
    messagesAt(problems, "groom.sni.1")[0] ?? "",
    /Cannot compile pattern "\(".*never matches/,
  );
  assert.equal(config.listen[4]?.certificates.length, 2); // the bad regex stays: it never matches
});

Deno.test("a service path not starting with / is an error (ODD-39)", () => {
  const server = readServerConfig(groom({ mode: "server", listen: ["*:1,a,b"], service: "agent" }));
  assert.deepEqual(server.problems, [{
    severity: "error",
    key: "groom.service",
    message: 'Service path "agent" must start with "/"',
  }]);
  const agent = readAgentDomainConfig(groom({ service: "x" }), { name: "d" });
  assert.equal(agent.problems[0]?.severity, "error");
});

Deno.test("bad targets are dropped and reported, not silently ignored (DIR-6, AGT-5)", () => {
  const { config, problems } = readAgentDomainConfig(
    groom({
      active: "yes",
      secret: "s",
      targets: {
        active: ["nosection", "notarget", "ftp", "upper", "nohost", "badpath", "badmethod", "ok"],
        notarget: { path: "^/" },
        ftp: { target: "ftp://host/" },
        upper: { target: "HTTP://host/" },
        nohost: { target: "http://|2@/x" },
        badpath: { target: "http://h", path: "(" },
        badmethod: { target: "http://h", method: "[" },
        ok: { target: "http://h" },
        unlisted: { target: "http://h" },
      },
    }),
    { name: "d" },
  );
  assert.deepEqual(config.targets.map((target) => target.name), ["ok"]);
  const errors = problems.filter((problem) => problem.severity === "error");
  assert.deepEqual(errors.map((problem) => [problem.key, problem.message]), [
    ["groom.targets.active", 'Target "nosection" has no section nosection { … }: ignored'],
    ["groom.targets.notarget", 'Target "notarget" has no target URL: ignored'],
    [
      "groom.targets.ftp.target",
      'Target "ftp://host/" must start with http:// or https://: target ignored',
    ],
    [
      "groom.targets.upper.target",
      'Target "HTTP://host/" must start with http:// or https://: target ignored',
    ],
    ["groom.targets.nohost.target", 'Target "http://|2@/x" names no host: target ignored'],
    ["groom.targets.badpath.path", errors[5]?.message ?? ""],
    ["groom.targets.badmethod.method", errors[6]?.message ?? ""],
  ]);
  assert.match(errors[5]?.message ?? "", /^Cannot compile pattern "\(": .*: target ignored$/);
  assert.deepEqual(messagesAt(problems, "groom.targets.unlisted"), [
    'Target section "unlisted" is not listed in targets.active: ignored',
  ]);
});

Deno.test("active domains without a secret or a target are warned about (PROTO-7, AGT-4)", () => {
  const server = readServerDomainConfig(groom({ active: "yes" }), { name: "d" });
  assert.deepEqual(messagesAt(server.problems, "groom.secret"), [
    "Active domain without a secret: every agent is refused",
  ]);
  const agent = readAgentDomainConfig(groom({ active: "yes" }), { name: "d" });
  assert.equal(agent.problems.length, 2);
  assert.match(
    messagesAt(agent.problems, "groom.targets.active")[0] ?? "",
    /every request gets 502/,
  );
});

Deno.test("unusable networks, bare addresses, bad ranges and login-less credentials are reported (ACL-1, ACL-3, ODD-19)", () => {
  const { config, problems } = readServerDomainConfig(
    groom({
      networks: ["10.0.0.1", "10.0.0.0/33", "300.0.0.0/8", "fd00::/8", "10.0.0.0/8"],
      clients: {
        credentials: ["secretonly", "john:pw", "@/etc/users"],
        ranges: ["mon-fri 08:00-19:00", "sometimes"],
      },
    }),
    { name: "d" },
  );
  assert.equal(config.networks.length, 5); // kept as written: the ACL module ignores them
  assert.deepEqual(problems.map((problem) => problem.key), [
    "groom.networks.0",
    "groom.networks.1",
    "groom.networks.2",
    "groom.clients.ranges.1",
    "groom.clients.credentials.0",
  ]);
  assert.deepEqual(problems.map((problem) => problem.severity), [
    "warning", // a bare address is taken as a single host
    "error",
    "error",
    "error", // a time range that does not parse (issue #4)
    "error",
  ]);
  assert.match(problems[0]?.message ?? "", /single host 10\.0\.0\.1\/32/);
});

Deno.test("unknown directives are warned about with the nearest known key (groom check)", () => {
  const { problems } = readServerConfig({
    tree: {
      mode: "server",
      groom: {
        mode: "server",
        listen: ["*:443,groom.sni"],
        sni: ["* a.pem a.key"],
        read_timout: "10s",
        connect_timeout: "5s",
        log: { sytem: "console()" },
        clients: { banner: "x" },
        "log.access": "x",
        whatever: "1",
      },
    },
  });
  assert.deepEqual(problems.map((problem) => [problem.key, problem.message]), [
    [
      "mode",
      'Top-level key "mode" is ignored: directives live in the groom { … } section',
    ],
    ["groom.read_timout", 'Unknown directive "read_timout" (did you mean "read_timeout"?)'],
    ["groom.connect_timeout", 'Directive "connect_timeout" is only used in agent main files'],
    ["groom.log.sytem", 'Unknown directive "sytem" (did you mean "system"?)'],
    ["groom.clients", 'Directive "clients" is only used in server domain files'],
    [
      "groom.log.access",
      'Key "log.access" contains a dot and cannot be looked up: write log { access = … }',
    ],
    ["groom.whatever", 'Unknown directive "whatever"'],
  ]);
});

Deno.test("keys named by a listen entry are known, inside and outside groom (TLS-5)", () => {
  const { problems } = readServerConfig({
    tree: {
      tls: { certs: ["* a.pem a.key"] },
      groom: { mode: "server", listen: ["*:443,tls.certs"] },
    },
  });
  assert.deepEqual(problems, []);
});

Deno.test("unknown keys inside target sections are warned about (DIR-6)", () => {
  const { problems } = readAgentDomainConfig(
    groom({ targets: { active: ["a"], a: { target: "http://h", hots: "x" } } }),
    { name: "d" },
  );
  assert.deepEqual(problems.map((problem) => problem.message), [
    'Unknown directive "hots" (did you mean "host"?)',
  ]);
});

Deno.test("problems carry the position of their key or of its nearest ancestor", () => {
  const at = (line: number): ConfPosition => ({ file: "server.conf", line, column: 5 });
  const positions = new Map<string, ConfPosition>([
    ["groom", at(1)],
    ["groom.listen", at(3)],
    ["groom.listen.0", at(3)],
    ["groom.idle_timeout", at(7)],
    ["groom.whatever", at(2)],
  ]);
  const { problems } = readServerConfig({
    tree: groom({ mode: "server", listen: ["nope"], idle_timeout: "1h", whatever: "x", log: {} })
      .tree,
    positions,
  });
  assert.deepEqual(
    problems.map((problem) => [problem.key, problem.position?.line]),
    [["groom.whatever", 2], ["groom.listen.0", 3], ["groom.listen", 3], ["groom.idle_timeout", 7]],
  );
  assert.equal(
    formatProblem(problems[0] as Problem),
    'server.conf:2:5: warning: groom.whatever: Unknown directive "whatever"',
  );
  assert.equal(
    formatProblem({ severity: "error", key: "", message: "Boom" }),
    "error: Boom",
  );
});

Deno.test("readMode() reads groom.mode verbatim, default agent (CLI-9)", () => {
  assert.equal(readMode({}), "agent");
  assert.equal(readMode({ groom: { mode: "server" } }), "server");
  assert.equal(readMode({ groom: { mode: "proxy" } }), "proxy");
  assert.equal(readMode({ mode: "server" }), "agent"); // outside groom: missed (CFG-12)
});

Deno.test("renderSettings() lists effective settings with secrets masked", () => {
  const server = readServerConfig(groom({
    mode: "server",
    listen: ["127.0.0.1:8443,groom.certificates"],
    certificates: ["* conf/dummy.pem conf/dummy.key"],
    read_timeout: "500ms",
  }));
  const lines = renderSettings(SERVER_SETTINGS, server.config);
  assert.deepEqual(lines, [
    'mode = "server"',
    'listen = [ "127.0.0.1:8443,groom.certificates" ]',
    'certificates = [ "* conf/dummy.pem conf/dummy.key" ]',
    "headers_size = 64kB",
    "idle_timeout = 15s",
    "read_timeout = 5s",
    "body_timeout = 60s",
    "write_timeout = 20s",
    "body_size = 8MB",
    'service = "/.well-known/groom-agent"',
    'domains = "/etc/groom/domains"',
    "unavailable = 404",
    "transaction = true",
    'log.system = "console(output=stdout)"',
    'log.access = ""',
    "log.disconnected = false",
    'session_key = ""',
    "session_lifetime = 20mn",
  ]);
  const domain = readServerDomainConfig(
    groom({
      secret: "topsecret",
      clients: { credentials: ["john:pw", "@/etc/users", "lonely"] },
    }),
    { name: "d" },
  );
  const domainLines = renderSettings(SERVER_DOMAIN_SETTINGS, domain.config).join("\n");
  assert.match(domainLines, /^secret = "\*\*\*\*"$/m);
  assert.match(
    domainLines,
    /^clients\.credentials = \[ "john:\*\*\*\*", "@\/etc\/users", "\*\*\*\*" \]$/m,
  );
  assert.ok(!domainLines.includes("topsecret") && !domainLines.includes(":pw"));
  const agent = readAgentDomainConfig(
    groom({ secret: "@/etc/secret", targets: { active: ["a"], a: { target: "http://h" } } }),
    { name: "d" },
  );
  const agentLines = renderSettings(AGENT_DOMAIN_SETTINGS, agent.config);
  assert.ok(agentLines.includes('secret = "@/etc/secret"'));
  assert.ok(agentLines.includes('targets.active = [ "a" ]'));
  assert.ok(agentLines.includes('targets.a.target = "http://h"'));
  assert.ok(agentLines.includes("targets.a.insecure = false"));
  assert.ok(renderSettings(AGENT_SETTINGS, readAgentConfig({ tree: {} }).config).length === 7);
});

Deno.test("maskSecret() and maskCredential() keep @file references and hide the rest", () => {
  assert.equal(maskSecret(""), "");
  assert.equal(maskSecret("abc"), "****");
  assert.equal(maskSecret("$6$salt$hash"), "****");
  assert.equal(maskSecret("@/etc/groom/secret"), "@/etc/groom/secret");
  assert.equal(maskCredential("john:$6$salt$hash"), "john:****");
  assert.equal(maskCredential("nologin"), "****");
  assert.equal(maskCredential("@/etc/users"), "@/etc/users");
});

Deno.test("every directive is declared once with a key, doc line, default and bounds (rule 2)", () => {
  let count = 0;
  for (const kind of KINDS) {
    const keys = directives(kind).map((directive) => directive.key);
    assert.equal(new Set(keys).size, keys.length, `duplicate key in ${kind}`);
    for (const { key, setting } of directives(kind)) {
      count++;
      assert.match(key, /^[a-z_]+(\.([a-z_]+|<name>))*$/, key);
      assert.ok(setting.doc.length > 10 && !setting.doc.includes("\n"), key);
      assert.ok(setting.defaultText !== "", key);
      assert.equal(setting.isNew, setting.doc.startsWith("(new)"), key);
      if (["integer", "size", "duration"].includes(setting.type)) {
        assert.ok(setting.min !== undefined && setting.max !== undefined, key);
      }
    }
  }
  // server 17 + agent 7 + server domain 11 + agent domain 9 + 5 target directives
  assert.equal(count, 49);
  assert.deepEqual(Object.keys(SETTINGS_BY_KIND), KINDS);
  assert.deepEqual(Object.keys(TARGET_SETTINGS), ["target", "method", "path", "host", "insecure"]);
});

Deno.test("directive keys are byte-identical to groom 1.3 (DIR-1, DIR-4, DIR-5, DIR-6)", () => {
  assert.deepEqual(directives("server").map((directive) => directive.key), [
    "mode",
    "listen",
    "headers_size",
    "idle_timeout",
    "read_timeout",
    "body_timeout", // new (ODD-21)
    "write_timeout",
    "body_size",
    "service",
    "domains",
    "unavailable",
    "transaction",
    "log.system",
    "log.access",
    "log.disconnected",
    "session_key", // new (ODD-10)
    "session_lifetime", // new (ODD-10)
  ]);
  assert.deepEqual(directives("agent").map((directive) => directive.key), [
    "mode",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "domains",
    "log.system",
    "log.access",
  ]);
  assert.deepEqual(directives("server-domain").map((directive) => directive.key), [
    "active",
    "secret",
    "concurrency",
    "body_size",
    "transaction",
    "forward",
    "networks",
    "clients.networks",
    "clients.ranges",
    "clients.credentials",
    "clients.banner",
  ]);
  assert.deepEqual(directives("agent-domain").map((directive) => directive.key), [
    "active",
    "secret",
    "concurrency",
    "body_size",
    "transaction",
    "remote",
    "service",
    "insecure",
    "targets.active",
    "targets.<name>.target",
    "targets.<name>.method",
    "targets.<name>.path",
    "targets.<name>.host",
    "targets.<name>.insecure", // new (ODD-11)
  ]);
});

/** The four sample files of `conf/`, by the kind of file they document. */
const SAMPLES: readonly (readonly [FileKind, string])[] = [
  ["server", "conf/server.conf"],
  ["agent", "conf/agent.conf"],
  ["server-domain", "conf/server/www.domain.com"],
  ["agent-domain", "conf/agent/www.domain.com"],
];
const REPOSITORY = new URL("../../", import.meta.url);

function readSample(path: string): string {
  return Deno.readTextFileSync(new URL(path, REPOSITORY));
}

/** The sample with every commented-out directive line (`// …`) switched on; `#` lines stay. */
function uncomment(text: string): string {
  return text.split("\n").map((line) => line.replace(/^(\s*)\/\/ ?/, "$1")).join("\n");
}

/** Reads a parsed tree as a file of `kind`. */
function readAs(kind: FileKind, parsed: ParsedTree) {
  switch (kind) {
    case "server":
      return readServerConfig(parsed);
    case "agent":
      return readAgentConfig(parsed);
    case "server-domain":
      return readServerDomainConfig(parsed, { name: "www.domain.com" });
    case "agent-domain":
      return readAgentDomainConfig(parsed, { name: "www.domain.com" });
  }
}

Deno.test("conf/ samples avoid text groom 1.3 would misread (CFG-2, CFG-5, CFG-6)", () => {
  let lines = 0;
  for (const [, path] of SAMPLES) {
    for (const [index, text] of readSample(path).split("\n").entries()) {
      lines++;
      const where = `${path}:${index + 1}`;
      // Quotes toggle string protection even inside comments: keep them balanced per line.
      assert.equal((text.match(/"/g) ?? []).length % 2, 0, `${where}: odd number of quotes`);
      assert.ok(!text.includes("{{"), `${where}: macros expand even in comments`);
      assert.ok(!/@\d+@/.test(text), `${where}: @NN@ sequences are rewritten`);
      assert.ok(!text.includes("/*"), `${where}: block comments are fragile`);
      assert.ok(!/^\s*\/\//.test(text) || /^\s*\/\/ \S/.test(text), `${where}: "// " directive`);
      assert.ok(!text.includes("\t"), `${where}: tab`);
    }
  }
  assert.equal(SAMPLES.length, 4);
  assert.ok(lines > 150, `only ${lines} lines read`);
});

Deno.test("DOC-DRIFT: every directive appears in its conf/ sample and every sample key is known", () => {
  let checked = 0;
  for (const [kind, path] of SAMPLES) {
    const parsed = parseConf(uncomment(readSample(path)), { file: path });
    const { problems } = readAs(kind, parsed);
    assert.deepEqual(problems.map(formatProblem), [], `${path} with every directive switched on`);
    for (const { key } of directives(kind)) {
      checked++;
      const [before, after] = key.split(`.${TARGET_NAME_PLACEHOLDER}.`);
      if (after === undefined) {
        assert.notEqual(lookupValue(parsed.tree, `groom.${key}`), undefined, `${path}: ${key}`);
        continue;
      }
      const sections = lookupValue(parsed.tree, `groom.${before}`) as ConfObject;
      const found = Object.entries(sections).some(([name, section]) =>
        name !== "active" && lookupValue(section, after) !== undefined
      );
      assert.ok(found, `${path}: no target section shows ${after}`);
    }
  }
  assert.equal(checked, 49);
});

Deno.test("conf/ samples load as they are with no problem (ODD-29: a working sample)", () => {
  for (const [kind, path] of SAMPLES) {
    const parsed = parseConf(readSample(path), { file: path });
    const { problems } = readAs(kind, parsed);
    assert.deepEqual(problems.map(formatProblem), [], path);
  }
  const server = readServerConfig(parseConf(readSample("conf/server.conf")));
  assert.equal(server.config.mode, "server");
  assert.equal(server.config.domains, "conf/server");
  assert.deepEqual(server.config.listen.map((entry) => [entry.hostname, entry.port]), [
    ["127.0.0.1", 8443],
  ]);
  assert.deepEqual(server.config.listen[0]?.certificates, [
    { pattern: "*", cert: "conf/dummy.pem", key: "conf/dummy.key" },
  ]);
  const agent = readAgentConfig(parseConf(readSample("conf/agent.conf")));
  assert.equal(agent.config.mode, "agent");
  assert.equal(agent.config.domains, "conf/agent");
  const serverDomain = readServerDomainConfig(
    parseConf(readSample("conf/server/www.domain.com")),
    { name: "www.domain.com" },
  );
  assert.equal(serverDomain.config.active, false);
  const agentDomain = readAgentDomainConfig(
    parseConf(uncomment(readSample("conf/agent/www.domain.com"))),
    { name: "www.domain.com" },
  );
  assert.equal(agentDomain.config.active, false);
  assert.deepEqual(agentDomain.config.targets.map((target) => target.name), [
    "static",
    "api",
    "default",
  ]);
});
