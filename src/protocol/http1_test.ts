/**
 * Unit tests of HTTP/1.x heads: groom's serialisation (PROTO-20/22/24), the strict parsers with a
 * focus on rejection (every smuggling vector of ODD-40), framing decisions, and properties.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  canonicalHeaderName,
  connectionTokens,
  findHeadEnd,
  formatHttpDate,
  type HeaderField,
  HttpParseError,
  type HttpParseErrorReason,
  isHopByHopHeader,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  serializeRequestHead,
  serializeResponseHead,
  synthesizeStatusHead,
} from "./http1.ts";

const bytes = (text: string): Uint8Array => Uint8Array.from(text, (char) => char.charCodeAt(0));
const text = (data: Uint8Array): string => String.fromCharCode(...data);

function assertParseError(
  fn: () => unknown,
  expected: { reason: HttpParseErrorReason; status: number },
): void {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof HttpParseError, `expected HttpParseError, got ${error}`);
    assert.equal(error.reason, expected.reason, error.message);
    assert.equal(error.status, expected.status, error.message);
    assert.match(error.message, /^Cannot parse /);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Names and helpers

Deno.test("canonicalHeaderName() gives Go's MIME canonical form (PROTO-20, §0)", () => {
  const table: [string, string][] = [
    ["x-lower-case", "X-Lower-Case"],
    ["sec-websocket-key", "Sec-Websocket-Key"],
    ["Sec-WebSocket-Accept", "Sec-Websocket-Accept"],
    ["WWW-AUTHENTICATE", "Www-Authenticate"],
    ["x-b3-traceid", "X-B3-Traceid"],
    ["content-md5", "Content-Md5"],
    ["foo_bar", "Foo_bar"],
    ["-x", "-X"],
    ["a b", "a b"], // not a token: unchanged, like Go
    ["", ""],
  ];
  for (const [name, canonical] of table) assert.equal(canonicalHeaderName(name), canonical, name);
});

Deno.test("connectionTokens() treats Connection as a token list (ODD-17)", () => {
  const headers: HeaderField[] = [
    ["Connection", "keep-alive, Upgrade"],
    ["connection", " ,X-Custom ,"],
  ];
  assert.deepEqual([...connectionTokens(headers)], ["keep-alive", "upgrade", "x-custom"]);
  assert.equal(connectionTokens([]).size, 0);
});

Deno.test("isHopByHopHeader() knows RFC 9110's list and Connection-named fields (AGT-11)", () => {
  for (const name of ["Connection", "keep-alive", "TE", "Transfer-Encoding", "Upgrade"]) {
    assert.equal(isHopByHopHeader(name), true, name);
  }
  assert.equal(isHopByHopHeader("X-Custom"), false);
  assert.equal(isHopByHopHeader("X-Custom", new Set(["x-custom"])), true);
});

Deno.test("findHeadEnd() finds the blank line after CRLF or LF lines, else -1", () => {
  assert.equal(findHeadEnd(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody")), 27);
  assert.equal(findHeadEnd(bytes("GET / HTTP/1.1\nHost: a\n\nbody")), 24);
  assert.equal(findHeadEnd(bytes("GET / HTTP/1.1\r\nHost: a\r\n")), -1);
  assert.equal(findHeadEnd(bytes("")), -1);
});

// ---------------------------------------------------------------------------------------------
// Serialisation

Deno.test("serializeRequestHead() writes Host, TE chunked, then sorted canonical fields (PROTO-20)", () => {
  const head: RequestHead = {
    method: "POST",
    target: "/up?x=1&y=two%20words",
    version: "HTTP/1.1",
    headers: [
      ["user-agent", "curl/7.88.1"],
      ["x-multi", "one"],
      ["Host", "golden.test:63500"],
      ["Trailer", "X-Checksum"],
      ["accept", "*/*"],
      ["Transfer-Encoding", "chunked"],
      ["X-Multi", "two"],
      ["x-empty", ""],
      ["content-type", "text/plain"],
    ],
  };
  assert.equal(
    text(serializeRequestHead(head)),
    "POST /up?x=1&y=two%20words HTTP/1.1\r\nHost: golden.test:63500\r\n" +
      "Transfer-Encoding: chunked\r\nAccept: */*\r\nContent-Type: text/plain\r\n" +
      "User-Agent: curl/7.88.1\r\nX-Empty: \r\nX-Multi: one\r\nX-Multi: two\r\n\r\n",
  );
});

Deno.test("serializeRequestHead() keeps Content-Length among the sorted fields (PROTO-20)", () => {
  const head: RequestHead = {
    method: "POST",
    target: "/upload",
    version: "HTTP/1.1",
    headers: [["Host", "h"], ["Content-Type", "a/b"], ["Content-Length", "8192"], [
      "Accept",
      "*/*",
    ]],
  };
  assert.equal(
    text(serializeRequestHead(head)),
    "POST /upload HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nContent-Length: 8192\r\n" +
      "Content-Type: a/b\r\n\r\n",
  );
});

Deno.test("serializeRequestHead() omits Host for an absolute-form target (PROTO-20)", () => {
  const head: RequestHead = {
    method: "GET",
    target: "http://example.com/x",
    version: "HTTP/1.1",
    headers: [["Host", "example.com"], ["Accept", "*/*"]],
  };
  assert.equal(
    text(serializeRequestHead(head)),
    "GET http://example.com/x HTTP/1.1\r\nAccept: */*\r\n\r\n",
  );
});

Deno.test("serializeRequestHead() drops Content-Length next to chunked (RFC 9112 §6.3)", () => {
  const head: RequestHead = {
    method: "POST",
    target: "/",
    version: "HTTP/1.1",
    headers: [["Host", "h"], ["Content-Length", "5"], ["Transfer-Encoding", "chunked"]],
  };
  assert.equal(
    text(serializeRequestHead(head)),
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
  );
});

Deno.test("serializeRequestHead() refuses header injection and ambiguous input", () => {
  const base: RequestHead = { method: "GET", target: "/", version: "HTTP/1.1", headers: [] };
  const bad: RequestHead[] = [
    { ...base, headers: [["X-A", "1\r\nX-Injected: 2"]] },
    { ...base, headers: [["X-A", "a\0b"]] },
    { ...base, headers: [["X A", "1"]] },
    { ...base, headers: [["X-A:", "1"]] },
    { ...base, headers: [["X-A", "\u0100"]] },
    { ...base, headers: [["Host", "a"], ["host", "b"]] },
    { ...base, headers: [["Transfer-Encoding", "gzip, chunked"]] },
    { ...base, method: "G T" },
    { ...base, target: "/a b" },
    { ...base, target: "" },
    { ...base, version: "HTTP/2.0" },
  ];
  for (const head of bad) assert.throws(() => serializeRequestHead(head), TypeError);
});

Deno.test("serializeResponseHead() writes the length header first, then sorted fields (PROTO-22)", () => {
  const head = {
    version: "HTTP/1.1",
    status: 200,
    reason: "OK",
    headers: [
      ["Set-Cookie", "b=2; Path=/; HttpOnly"],
      ["content-type", "application/json"],
      ["X-Multi", "one"],
      ["Content-Length", "451"],
      ["set-cookie", "a=1; Path=/"],
      ["X-Multi", "two"],
    ] as HeaderField[],
  };
  assert.equal(
    text(serializeResponseHead(head)),
    "HTTP/1.1 200 OK\r\nContent-Length: 451\r\nContent-Type: application/json\r\n" +
      "Set-Cookie: b=2; Path=/; HttpOnly\r\nSet-Cookie: a=1; Path=/\r\n" +
      "X-Multi: one\r\nX-Multi: two\r\n\r\n",
  );
});

Deno.test("serializeResponseHead() writes TE chunked first and drops Trailer (PROTO-22)", () => {
  const head = {
    version: "HTTP/1.1",
    status: 299,
    reason: "Custom Reason",
    headers: [
      ["Trailer", "X-Sum"],
      ["transfer-encoding", "chunked"],
      ["Content-Length", "12"],
      ["Cache-Control", "no-cache"],
    ] as HeaderField[],
  };
  assert.equal(
    text(serializeResponseHead(head)),
    "HTTP/1.1 299 Custom Reason\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n",
  );
});

Deno.test("serializeResponseHead() refuses bad status, reason or conflicting lengths", () => {
  const base = { version: "HTTP/1.1", status: 200, reason: "OK", headers: [] as HeaderField[] };
  for (
    const head of [
      { ...base, status: 99 },
      { ...base, status: 600 },
      { ...base, reason: "O\r\nK" },
      { ...base, headers: [["Content-Length", "1"], ["Content-Length", "2"]] as HeaderField[] },
      { ...base, headers: [["Content-Length", "x"]] as HeaderField[] },
    ]
  ) {
    assert.throws(() => serializeResponseHead(head), TypeError);
  }
});

Deno.test("synthesizeStatusHead() writes status, standard reason and Date (PROTO-24)", () => {
  const date = new Date(Date.UTC(2026, 10, 25, 0, 24, 58));
  const table: [number, string][] = [
    [400, "HTTP/1.1 400 Bad Request\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n"],
    [502, "HTTP/1.1 502 Bad Gateway\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n"],
    [504, "HTTP/1.1 504 Gateway Timeout\r\nDate: Wed, 25 Nov 2026 00:24:58 GMT\r\n\r\n"],
  ];
  for (const [status, expected] of table) {
    assert.equal(text(synthesizeStatusHead(status, date)), expected);
  }
  // Observed lengths: 65, 65 and 69 bytes (README §7.9).
  assert.deepEqual(table.map(([status]) => synthesizeStatusHead(status, date).length), [
    65,
    65,
    69,
  ]);
  assert.throws(() => synthesizeStatusHead(999, date), RangeError);
  assert.throws(() => synthesizeStatusHead(502, new Date(Number.NaN)), RangeError);
});

Deno.test("formatHttpDate() writes a fixed-width IMF-fixdate with a two-digit day", () => {
  assert.equal(
    formatHttpDate(new Date(Date.UTC(2026, 0, 5, 3, 4, 5))),
    "Mon, 05 Jan 2026 03:04:05 GMT",
  );
});

// ---------------------------------------------------------------------------------------------
// Request parsing

const GOOD_REQUEST =
  "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-A:  spaced\t \r\n\r\n";

Deno.test("parseRequestHead() returns the head in received order with trimmed values", () => {
  const { head, framing, mustClose } = parseRequestHead(bytes(GOOD_REQUEST));
  assert.deepEqual(head, {
    method: "GET",
    target: "/a?b=1",
    version: "HTTP/1.1",
    headers: [["Host", "example.com"], ["X-Empty", ""], ["X-A", "spaced"]],
  });
  assert.deepEqual(framing, { kind: "none" });
  assert.equal(mustClose, false);
});

Deno.test("parseRequestHead() accepts LF-only line ends (RFC 9112 §2.2)", () => {
  const { head } = parseRequestHead(bytes("GET / HTTP/1.1\nHost: a\n\n"));
  assert.deepEqual(head.headers, [["Host", "a"]]);
});

Deno.test("parseRequestHead() keeps obs-text bytes so they round-trip", () => {
  const raw = "GET /caf\xe9 HTTP/1.1\r\nHost: a\r\nX-Name: Ren\xe9e\r\n\r\n";
  const { head } = parseRequestHead(bytes(raw));
  assert.equal(head.target, "/caf\xe9");
  assert.equal(text(serializeRequestHead(head)), raw);
});

Deno.test("parseRequestHead() decides framing from parsed fields only (ODD-40)", () => {
  const table: [string, unknown][] = [
    ["Content-Length: 12\r\n", { kind: "length", length: 12 }],
    ["Content-Length: 0\r\n", { kind: "length", length: 0 }],
    ["Transfer-Encoding: chunked\r\n", { kind: "chunked" }],
    ["Transfer-Encoding: CHUNKED\r\n", { kind: "chunked" }],
    ["X-Note: Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", { kind: "length", length: 3 }],
    ["", { kind: "none" }],
  ];
  for (const [fields, framing] of table) {
    const parsed = parseRequestHead(bytes(`POST / HTTP/1.1\r\nHost: a\r\n${fields}\r\n`));
    assert.deepEqual(parsed.framing, framing, fields);
  }
});

Deno.test("parseRequestHead() with CL and TE uses chunked, drops CL and asks to close (ODD-40)", () => {
  const parsed = parseRequestHead(
    bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"),
  );
  assert.deepEqual(parsed.framing, { kind: "chunked" });
  assert.equal(parsed.mustClose, true);
  assert.deepEqual(parsed.head.headers, [["Host", "a"], ["Transfer-Encoding", "chunked"]]);
});

Deno.test("parseRequestHead() collapses identical repeated Content-Length (RFC 9110 §8.6)", () => {
  const parsed = parseRequestHead(
    bytes(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: y\r\ncontent-length: 5, 5\r\n\r\n",
    ),
  );
  assert.deepEqual(parsed.framing, { kind: "length", length: 5 });
  assert.deepEqual(parsed.head.headers, [["Host", "a"], ["Content-Length", "5"], ["X", "y"]]);
});

Deno.test("parseRequestHead() accepts HTTP/1.0 without Host, OPTIONS *, CONNECT and absolute form", () => {
  assert.equal(parseRequestHead(bytes("GET / HTTP/1.0\r\n\r\n")).head.version, "HTTP/1.0");
  assert.equal(parseRequestHead(bytes("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")).head.target, "*");
  assert.equal(
    parseRequestHead(bytes("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")).head
      .target,
    "a.example:443",
  );
  assert.equal(
    parseRequestHead(bytes("GET https://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n")).head
      .target,
    "https://a.example/x",
  );
});

const R400 = (reason: HttpParseErrorReason) => ({ reason, status: 400 });

Deno.test("parseRequestHead() rejects smuggling vectors and malformed heads (ODD-40, RFC 9112)", () => {
  const table: [string, string, { reason: HttpParseErrorReason; status: number }][] = [
    [
      "duplicate different Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      R400("conflicting-content-length"),
    ],
    [
      "Content-Length list with different values",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
      R400("conflicting-content-length"),
    ],
    [
      "signed Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
      R400("bad-content-length"),
    ],
    [
      "negative Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      R400("bad-content-length"),
    ],
    [
      "hex Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
      R400("bad-content-length"),
    ],
    [
      "empty Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
      R400("bad-content-length"),
    ],
    [
      "huge Content-Length",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999\r\n\r\n",
      R400("bad-content-length"),
    ],
    [
      "Transfer-Encoding: chunked, identity",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      R400("bad-transfer-encoding"),
    ],
    [
      "chunked applied twice",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      R400("bad-transfer-encoding"),
    ],
    [
      "empty Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n",
      R400("bad-transfer-encoding"),
    ],
    [
      "Transfer-Encoding in HTTP/1.0",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      R400("bad-transfer-encoding"),
    ],
    [
      "unknown transfer coding",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      { reason: "unsupported-transfer-encoding", status: 501 },
    ],
    [
      "identity transfer coding",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
      { reason: "unsupported-transfer-encoding", status: 501 },
    ],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", R400("obs-fold")],
    ["obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", R400("obs-fold")],
    ["whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", R400("obs-fold")],
    [
      "space before colon",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
      R400("space-before-colon"),
    ],
    ["tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", R400("space-before-colon")],
    ["bare CR line end", "GET / HTTP/1.1\rHost: a\r\n\r\n", R400("bare-cr")],
    ["bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", R400("bare-cr")],
    [
      "NUL in a value",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n",
      R400("bad-header-value"),
    ],
    ["DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f\r\n\r\n", R400("bad-header-value")],
    [
      "separator in a name",
      "GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n",
      R400("bad-header-name"),
    ],
    ["non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX-\xe9: 1\r\n\r\n", R400("bad-header-name")],
    ["missing colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A 1\r\n\r\n", R400("bad-header-name")],
    ["empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", R400("bad-header-name")],
    [
      "double space in request line",
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      R400("bad-request-line"),
    ],
    ["tab in request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-request-line")],
    [
      "trailing space in request line",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      R400("bad-request-line"),
    ],
    ["no version", "GET /\r\nHost: a\r\n\r\n", R400("bad-request-line")],
    ["lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", R400("bad-request-line")],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", {
      reason: "unsupported-version",
      status: 505,
    }],
    ["bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-method")],
    ["relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-target")],
    ["asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-target")],
    ["control character in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-target")],
    ["missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", R400("missing-host")],
    ["two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", R400("duplicate-host")],
    ["Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", R400("bad-host")],
    ["Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", R400("bad-host")],
    ["leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", R400("bad-request-line")],
    ["no blank line", "GET / HTTP/1.1\r\nHost: a\r\n", R400("incomplete-head")],
    ["not HTTP (agent_bad_request)", "THIS IS NOT HTTP\r\n\r\n", R400("bad-request-line")],
    [
      "body bytes after the head",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
      R400("trailing-bytes"),
    ],
  ];
  for (const [name, raw, expected] of table) {
    assert.throws(() => parseRequestHead(bytes(raw)), (error) => {
      assert.ok(error instanceof HttpParseError, `${name}: ${error}`);
      assert.equal(error.reason, expected.reason, `${name}: ${error.message}`);
      assert.equal(error.status, expected.status, name);
      return true;
    }, name);
  }
});

Deno.test("parseRequestHead() bounds head size and field count with 431", () => {
  const raw = bytes("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
  assertParseError(
    () => parseRequestHead(raw, { maxHeadSize: raw.length - 1 }),
    { reason: "head-too-large", status: 431 },
  );
  assert.equal(parseRequestHead(raw, { maxHeadSize: raw.length }).head.headers.length, 3);
  assertParseError(
    () => parseRequestHead(raw, { maxHeaderCount: 2 }),
    { reason: "too-many-headers", status: 431 },
  );
  assert.equal(parseRequestHead(raw, { maxHeaderCount: 3 }).head.headers.length, 3);
});

// ---------------------------------------------------------------------------------------------
// Response parsing

Deno.test("parseResponseHead() decides framing per RFC 9112 §6.3 (SRV-15, PROTO-23)", () => {
  const table: [string, string | undefined, unknown, boolean][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", { kind: "length", length: 3 }, false],
    ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD", { kind: "none" }, false],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", { kind: "chunked" }, false],
    ["HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n", "GET", { kind: "close" }, true],
    ["HTTP/1.0 200 OK\r\n\r\n", undefined, { kind: "close" }, true],
    [
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
      "GET",
      { kind: "none" },
      false,
    ],
    ["HTTP/1.1 100 Continue\r\n\r\n", "POST", { kind: "none" }, false],
    ["HTTP/1.1 204 No Content\r\n\r\n", "DELETE", { kind: "none" }, false],
    ["HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", { kind: "none" }, false],
  ];
  for (const [raw, requestMethod, framing, mustClose] of table) {
    const options = requestMethod === undefined ? {} : { requestMethod };
    const parsed = parseResponseHead(bytes(raw), options);
    assert.deepEqual(parsed.framing, framing, raw);
    assert.equal(parsed.mustClose, mustClose, raw);
  }
});

Deno.test("parseResponseHead() with CL and TE uses chunked, drops CL and asks to close (ODD-40)", () => {
  const parsed = parseResponseHead(
    bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
  );
  assert.deepEqual(parsed.framing, { kind: "chunked" });
  assert.equal(parsed.mustClose, true);
  assert.deepEqual(parsed.head.headers, [["Transfer-Encoding", "chunked"]]);
});

Deno.test("parseResponseHead() keeps the reason phrase, possibly empty (PROTO-22)", () => {
  assert.equal(parseResponseHead(bytes("HTTP/1.1 299 Very Fine\r\n\r\n")).head.reason, "Very Fine");
  assert.equal(parseResponseHead(bytes("HTTP/1.1 200 \r\n\r\n")).head.reason, "");
  assert.equal(parseResponseHead(bytes("HTTP/1.1 200\r\n\r\n")).head.reason, "");
});

Deno.test("parseResponseHead() rejects malformed heads with 502 (PROTO-24)", () => {
  const table: [string, HttpParseErrorReason][] = [
    ["HTTP/1.1 20 OK\r\n\r\n", "bad-status-line"],
    ["HTTP/1.1 600 Odd\r\n\r\n", "bad-status-line"],
    ["HTTP/1.1 099 Odd\r\n\r\n", "bad-status-line"],
    ["HTTP/1.1 200OK\r\n\r\n", "bad-status-line"],
    ["HTTP/2.0 200 OK\r\n\r\n", "bad-status-line"],
    ["ICY 200 OK\r\n\r\n", "bad-status-line"],
    ["HTTP/1.1 200 O\x00K\r\n\r\n", "bad-status-line"],
    ["HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "obs-fold"],
    ["HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", "space-before-colon"],
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "conflicting-content-length",
    ],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "bad-transfer-encoding"],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported-transfer-encoding"],
    ["HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "bad-transfer-encoding"],
    ["HTTP/1.1 200 OK\r\nX-A: 1\r2\r\n\r\n", "bare-cr"],
    ["HTTP/1.1 200 OK\r\n", "incomplete-head"],
    ["HTTP/1.1 200 OK\r\n\r\nbody", "trailing-bytes"],
  ];
  for (const [raw, reason] of table) {
    assertParseError(() => parseResponseHead(bytes(raw)), { reason, status: 502 });
  }
  const big = bytes("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
  assertParseError(
    () => parseResponseHead(big, { maxHeadSize: 10 }),
    { reason: "head-too-large", status: 502 },
  );
});

// ---------------------------------------------------------------------------------------------
// Properties

const tokenArbitrary = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const valueArbitrary = fc.stringMatching(
  /^(?:[!-~\x80-\xff](?:[ \t!-~\x80-\xff]{0,20}[!-~\x80-\xff])?)?$/,
);
const headersArbitrary = fc.array(
  fc.tuple(tokenArbitrary, valueArbitrary).filter(([name]) =>
    !["host", "content-length", "transfer-encoding", "trailer"].includes(name.toLowerCase())
  ),
  { maxLength: 12 },
);

Deno.test("serialize∘parse is stable for random request heads (property, PROTO-20)", () => {
  fc.assert(
    fc.property(
      tokenArbitrary,
      fc.stringMatching(/^\/[!-~]{0,30}$/),
      headersArbitrary,
      (method, target, fields) => {
        const head: RequestHead = {
          method,
          target,
          version: "HTTP/1.1",
          headers: [["host", "example.com"], ...fields.map(([n, v]): HeaderField => [n, v])],
        };
        const first = serializeRequestHead(head);
        const parsed = parseRequestHead(first);
        assert.deepEqual(serializeRequestHead(parsed.head), first);
        assert.equal(parsed.head.headers.length, head.headers.length);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("serialize∘parse is stable for random response heads (property, PROTO-22)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 100, max: 599 }),
      fc.stringMatching(/^[ !-~]{0,20}$/),
      headersArbitrary,
      fc.option(fc.integer({ min: 0, max: 1e12 })),
      (status, reason, fields, length) => {
        const headers: HeaderField[] = fields.map(([n, v]): HeaderField => [n, v]);
        if (length !== null) headers.push(["content-length", String(length)]);
        const first = serializeResponseHead({ version: "HTTP/1.1", status, reason, headers });
        const parsed = parseResponseHead(first);
        assert.deepEqual(serializeResponseHead(parsed.head), first);
      },
    ),
    { numRuns: 300 },
  );
});

function parsesOrHttpParseError(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof HttpParseError, `unexpected ${error}`);
  }
}

/** Bytes biased towards HTTP syntax so the parsers get past the start line. */
const headishBytes = fc.array(
  fc.oneof(
    fc.constantFrom(
      "GET / HTTP/1.1\r\n",
      "HTTP/1.1 200 OK\r\n",
      "Host: a\r\n",
      "Content-Length: 5\r\n",
      "Transfer-Encoding: chunked\r\n",
      "\r\n",
      "\n",
      "\r",
      " ",
      ":",
      ",",
    ),
    fc.uint8Array({ maxLength: 8 }).map((b) => String.fromCharCode(...b)),
  ),
  { maxLength: 12 },
).map((parts) => bytes(parts.join("")));

Deno.test("head parsers on arbitrary bytes return a head or throw HttpParseError (property)", () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), headishBytes), (input) => {
      parsesOrHttpParseError(() => parseRequestHead(input));
      parsesOrHttpParseError(() => parseResponseHead(input, { requestMethod: "GET" }));
      assert.ok(findHeadEnd(input) <= input.length);
    }),
    { numRuns: 3000 },
  );
});
