/**
 * The long fuzz run (issue 8): every decoder and parser that reads peer or user input is fed
 * random and biased inputs with fast-check, many more than the unit tests' property runs. Each
 * input must parse or fail with the module's own error class (FrameError, HttpParseError,
 * WebSocketProtocolError, ConfSyntaxError), never anything else; readers of parsed trees must
 * never throw; well-formed inputs must round-trip; no backend the targets do not list may come out
 * of the agent's request planning (ODD-41); and no single input may take longer than
 * {@linkcode SLOW_INPUT_MS}. The properties run in a worker watched by this process: a worker
 * silent for {@linkcode WATCHDOG_MS} is stopped and reported as a hang (an endless loop).
 *
 * ```sh
 * deno task fuzz                       # every property, 100 000 runs each, a random seed
 * deno task fuzz --seed 42 --runs 5000 # replay a run (the seed is printed at the start)
 * deno task fuzz --only frame-v1,conf-parse
 * deno task fuzz --list
 * ```
 * Exit status 0 when every property held, 1 otherwise.
 * @module
 */

import fc from "fast-check";
import {
  ChunkedDecoder,
  decodeFrame,
  encodeChunk,
  encodeFrame,
  encodeLastChunk,
  encodeWebSocketFrame,
  findHeadEnd,
  FrameError,
  type HeaderField,
  HttpParseError,
  MAX_STREAM_ID,
  MAX_WINDOW_INCREMENT,
  Opcode,
  parseRequestHead,
  parseResponseHead,
  serializeRequestHead,
  serializeResponseHead,
  type TunnelFrame,
  WebSocketDecoder,
  WebSocketProtocolError,
} from "../src/protocol/mod.ts";
import {
  type ConfObject,
  ConfSyntaxError,
  type ConfValue,
  formatConf,
  parseConf,
  parseDuration,
  parseInteger,
  parseSize,
  readAgentConfig,
  readAgentDomainConfig,
  readServerConfig,
  readServerDomainConfig,
} from "../src/config/mod.ts";
import { BackendRequestError, compileTargets, planBackendRequest } from "../src/agent/mod.ts";

/** Runs of each property when `--runs` is not given. */
export const DEFAULT_RUNS = 100_000;
/** Longest time one input may take; longer is a failure (quadratic or worse behaviour). */
export const SLOW_INPUT_MS = 1_000;
/** A worker that reports nothing for this long is stopped: some input made it loop. */
export const WATCHDOG_MS = 60_000;
/** The worker reports progress every this many inputs. */
const PROGRESS_EVERY = 1_000;
/** The worker's name, which tells the module it runs as the worker. */
const WORKER_NAME = "groom-fuzz-worker";

/** One fuzzed property. */
interface FuzzProperty<T> {
  readonly name: string;
  readonly description: string;
  readonly arbitrary: fc.Arbitrary<T>;
  /** Throws when the property does not hold. */
  readonly check: (value: T) => void;
}

const latin1 = (text: string) => Uint8Array.from(text, (char) => char.charCodeAt(0) & 0xff);

function fail(message: string): never {
  throw new Error(message);
}

/** Runs `fn`; an error that is not an instance of `allowed` fails the property. */
function typedOrOk(allowed: abstract new (...args: never[]) => Error, fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof allowed)) {
      fail(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  if (a.length !== b.length || a.some((byte, i) => byte !== b[i])) fail(`${what} differ`);
}

// ---- arbitraries ---------------------------------------------------------------------------

/** A message trailer with a flags byte biased toward the legal ones. */
const FLAGS = fc.oneof(
  fc.constantFrom(0x41, 0x61, 0xc1, 0x02, 0x82, 0x04, 0x84, 0x08, 0x10),
  fc.integer({ min: 0, max: 255 }),
);
const MESSAGE = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(fc.uint8Array({ maxLength: 300 }), FLAGS, fc.integer({ min: 0, max: MAX_STREAM_ID }))
    .map(([payload, flags, id]) => {
      const out = new Uint8Array(payload.length + 4);
      out.set(payload);
      out.set([flags, id >> 16, (id >> 8) & 0xff, id & 0xff], payload.length);
      return out;
    }),
);
const STREAM_ID = fc.integer({ min: 0, max: MAX_STREAM_ID });
const LEGAL_FRAME: fc.Arbitrary<TunnelFrame> = fc.oneof(
  fc.record({
    kind: fc.constant("head" as const),
    streamId: STREAM_ID,
    payload: fc.uint8Array({ maxLength: 300 }),
    upgrade: fc.boolean(),
    end: fc.boolean(),
  }).filter((frame) => !(frame.upgrade && frame.end)),
  fc.record({
    kind: fc.constantFrom("body" as const, "raw" as const),
    streamId: STREAM_ID,
    payload: fc.uint8Array({ maxLength: 300 }),
    end: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("abort" as const),
    streamId: STREAM_ID,
    payload: fc.constant(new Uint8Array(0)),
  }),
  fc.record({
    kind: fc.constant("window" as const),
    streamId: STREAM_ID,
    increment: fc.integer({ min: 1, max: MAX_WINDOW_INCREMENT }),
  }).map((frame) => ({ ...frame, payload: new Uint8Array(4) })),
);

/** Bytes biased toward HTTP syntax so the parsers get past the start line. */
const HEADISH = fc.array(
  fc.oneof(
    fc.constantFrom(
      "GET / HTTP/1.1\r\n",
      "POST /x?y HTTP/1.0\r\n",
      "HTTP/1.1 200 OK\r\n",
      "HTTP/1.1 101 Switching Protocols\r\n",
      "Host: a\r\n",
      "Content-Length: 5\r\n",
      "Content-Length: 5, 5\r\n",
      "Transfer-Encoding: chunked\r\n",
      "Transfer-Encoding: gzip, chunked\r\n",
      "Connection: upgrade\r\n",
      " folded\r\n",
      "\r\n",
      "\n",
      "\r",
      " ",
      ":",
      ",",
      "\0",
    ),
    fc.uint8Array({ maxLength: 8 }).map((b) => String.fromCharCode(...b)),
  ),
  { maxLength: 16 },
).map((parts) => latin1(parts.join("")));

const TOKEN = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const FIELD_VALUE = fc.stringMatching(
  /^(?:[!-~\x80-\xff](?:[ \t!-~\x80-\xff]{0,20}[!-~\x80-\xff])?)?$/,
);
const FIELDS = fc.array(
  fc.tuple(TOKEN, FIELD_VALUE).filter(([name]) =>
    !["host", "content-length", "transfer-encoding", "trailer"].includes(name.toLowerCase())
  ),
  { maxLength: 12 },
);

/** Chunked-coding fragments, split at random points. */
const CHUNKISH = fc.array(
  fc.oneof(
    fc.constantFrom(
      "5\r\n",
      "hello",
      "\r\n",
      "0\r\n",
      ";ext=1",
      "\n",
      "\r",
      "X-T: 1\r\n",
      "ffffffff\r\n",
      "fffffffffffffffff\r\n",
    ),
    fc.uint8Array({ maxLength: 6 }).map((b) => String.fromCharCode(...b)),
  ),
  { maxLength: 14 },
).map((parts) => latin1(parts.join("")));

const GRAMMAR_TEXT = fc.array(
  fc.constantFrom(..."{}[]\",;:=#/*\\ \t\n\r\uFEFFaZ09.-_'@u<>!|&+"),
  { maxLength: 120 },
).map((chars) => chars.join(""));

const VALID_DOCUMENTS = [
  'groom {\n  mode = server\n  listen = [ "*:443" ]\n  log { system = "console(output=stdout)" }\n}\n',
  'groom {\n  active = yes\n  secret = "s"\n  targets {\n    active = [ a ]\n    a { path = "^/(.*)$"; target = "http://127.0.0.1:8000/$1" }\n  }\n}\n',
  '{"groom": {"mode": "agent", "n": [1, 2, {"a": null}]}}',
  "# comment\na = 1; b = 2\nc { d = [x,y] }\n/* block * with star */\ne value;\n",
  'groom {\n  clients {\n    networks = [ 10.0.0.0/8 ]\n    ranges = [ "mon-fri 08:00-19:00" ]\n  }\n}\n',
];
const EDIT = fc.record({
  at: fc.nat(),
  remove: fc.nat({ max: 6 }),
  insert: fc.array(fc.constantFrom(...'{}[]",;:=#/*\\ \n{{<>!|&+-}}'), { maxLength: 5 })
    .map((chars) => chars.join("")),
});
const MUTATED_DOCUMENT = fc.tuple(
  fc.constantFrom(...VALID_DOCUMENTS),
  fc.array(EDIT, { minLength: 1, maxLength: 5 }),
).map(([document, edits]) => {
  let text = document;
  for (const { at, remove, insert } of edits) {
    const position = at % (text.length + 1);
    text = text.slice(0, position) + insert + text.slice(position + remove);
  }
  return text;
});

const KEY = fc.oneof(
  fc.constantFrom(
    "mode",
    "listen",
    "domains",
    "active",
    "secret",
    "targets",
    "clients",
    "networks",
    "ranges",
    "credentials",
    "body_size",
    "concurrency",
    "read_timeout",
    "target",
    "path",
    "method",
    "host",
    "remote",
    "log",
    "system",
    "access",
  ),
  fc.string({ maxLength: 6 }),
);
const SCALAR = fc.oneof(
  fc.string({ unit: "binary", maxLength: 16 }),
  fc.constantFrom("yes", "no", "10s", "1.5mn", "8MB", "-1", "0", "1e99", "127.0.0.1:0", "http://a"),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const TREE = fc.letrec<{ value: ConfValue; object: ConfObject }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    SCALAR,
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc.dictionary(KEY, tie("value"), { maxKeys: 5, noNullPrototype: true }),
})).object;
const STRING_TREE = fc.letrec<{ value: ConfValue; object: ConfObject }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string({ unit: "binary", maxLength: 12 }),
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc.dictionary(
    fc.string({ unit: "grapheme", maxLength: 8 }).filter((key) =>
      key.split(" ").filter((word) => word !== "").length <= 1
    ),
    tie("value"),
    { maxKeys: 4, noNullPrototype: true },
  ),
})).object;

/** Request targets a hostile server might send to reach another backend (ODD-41). */
const HOSTILE_TARGET = fc.oneof(
  fc.tuple(
    fc.constantFrom(
      "/",
      "/prefix",
      "/prefix/",
      "//",
      "/prefix@",
      "/prefix%40",
      "/prefix:",
      "\\",
      "",
    ),
    fc.constantFrom("", "@", "%40", ":", "//", "\\", "?", "#", "%2f", "..", "/../"),
    fc.constantFrom("evil.example", "10.9.9.9", "[::2]", "127.0.0.1:9", "x", ""),
    fc.constantFrom("", "/p", ":1/", "?q=@evil"),
  ).map((parts) => parts.join("")),
  fc.constantFrom("http://evil.example/x", "https://10.9.9.9:8443/", "*", "evil.example:443"),
  fc.stringMatching(/^\/[ -~]{0,30}$/),
);
const TARGETS = compileTargets([
  {
    name: "prefix",
    target: "http://127.0.0.1:8001/base$1",
    method: "",
    path: "^/prefix(.*)$",
    host: "target",
    insecure: false,
  },
  {
    name: "plain",
    target: "https://2@127.0.0.2:8002|[::1]:8003/",
    method: "",
    path: "^/plain",
    host: "remote",
    insecure: false,
  },
  {
    name: "rest",
    target: "http://backend.internal:8004",
    method: "",
    path: "",
    host: "target",
    insecure: false,
  },
]).targets;
const LISTED = new Set(["127.0.0.1:8001", "127.0.0.2:8002", "::1:8003", "backend.internal:8004"]);

// ---- properties ----------------------------------------------------------------------------

/** Every property of the run, in order. */
const PROPERTIES: readonly FuzzProperty<never>[] = [
  {
    name: "frame-v1",
    description: "decodeFrame(bytes, 1) returns a frame or throws FrameError (PROTO-15/16)",
    arbitrary: MESSAGE,
    check: (message: Uint8Array) => typedOrOk(FrameError, () => decodeFrame(message, 1)),
  },
  {
    name: "frame-v2",
    description: "decodeFrame(bytes, 2) returns a frame or throws FrameError (issue 6)",
    arbitrary: MESSAGE,
    check: (message: Uint8Array) => typedOrOk(FrameError, () => decodeFrame(message, 2)),
  },
  {
    name: "frame-roundtrip",
    description: "decodeFrame(encodeFrame(f), 2) gives back f for legal frames",
    arbitrary: LEGAL_FRAME,
    check: (frame: TunnelFrame) => {
      const encoded = encodeFrame(frame);
      const decoded = decodeFrame(encoded, 2);
      if (decoded.kind !== frame.kind || decoded.streamId !== frame.streamId) fail("header");
      if (frame.kind !== "window") sameBytes(decoded.payload, frame.payload, "payloads");
      sameBytes(encodeFrame(decoded), encoded, "re-encodings");
    },
  },
  {
    name: "head-parse",
    description: "request and response head parsers return a head or throw HttpParseError",
    arbitrary: fc.oneof(fc.uint8Array({ maxLength: 300 }), HEADISH),
    check: (input: Uint8Array) => {
      typedOrOk(HttpParseError, () => parseRequestHead(input));
      typedOrOk(HttpParseError, () => parseResponseHead(input, { requestMethod: "GET" }));
      typedOrOk(HttpParseError, () => parseResponseHead(input, { requestMethod: "HEAD" }));
      if (findHeadEnd(input) > input.length) fail("findHeadEnd past the end");
    },
  },
  {
    name: "head-roundtrip-request",
    description: "serialise∘parse of request heads is stable (PROTO-20)",
    arbitrary: fc.tuple(TOKEN, fc.stringMatching(/^\/[!-~]{0,30}$/), FIELDS),
    check: ([method, target, fields]: [string, string, [string, string][]]) => {
      const headers: HeaderField[] = [["host", "example.com"], ...fields];
      const first = serializeRequestHead({ method, target, version: "HTTP/1.1", headers });
      const parsed = parseRequestHead(first);
      sameBytes(serializeRequestHead(parsed.head), first, "serialisations");
    },
  },
  {
    name: "head-roundtrip-response",
    description: "serialise∘parse of response heads is stable (PROTO-22)",
    arbitrary: fc.tuple(
      fc.integer({ min: 100, max: 599 }),
      fc.stringMatching(/^[ !-~]{0,20}$/),
      FIELDS,
      fc.option(fc.integer({ min: 0, max: 1e12 })),
    ),
    check: (
      [status, reason, fields, length]: [number, string, [string, string][], number | null],
    ) => {
      const headers: HeaderField[] = [...fields];
      if (length !== null) headers.push(["content-length", String(length)]);
      const first = serializeResponseHead({ version: "HTTP/1.1", status, reason, headers });
      sameBytes(serializeResponseHead(parseResponseHead(first).head), first, "serialisations");
    },
  },
  {
    name: "chunked-decode",
    description: "ChunkedDecoder on any bytes, split anywhere, yields data or HttpParseError",
    arbitrary: fc.tuple(fc.oneof(fc.uint8Array({ maxLength: 200 }), CHUNKISH), fc.nat()),
    check: ([input, split]: [Uint8Array, number]) => {
      typedOrOk(HttpParseError, () => {
        const decoder = new ChunkedDecoder();
        const at = split % (input.length + 1);
        const first = decoder.decode(input.subarray(0, at));
        if (!first.done) decoder.decode(input.subarray(first.consumed));
        decoder.decode(input.subarray(at));
      });
    },
  },
  {
    name: "chunked-roundtrip",
    description: "encodeChunk… encodeLastChunk decodes to the same data, however it is split",
    arbitrary: fc.tuple(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
      fc.integer({ min: 1, max: 50 }),
    ),
    check: ([pieces, step]: [Uint8Array[], number]) => {
      const wire = [...pieces.map((piece) => encodeChunk(piece)), encodeLastChunk()];
      const all = new Uint8Array(wire.reduce((n, part) => n + part.length, 0));
      let offset = 0;
      for (const part of wire) {
        all.set(part, offset);
        offset += part.length;
      }
      const decoder = new ChunkedDecoder();
      const out: number[] = [];
      let done = false;
      for (let i = 0; i < all.length && !done; i += step) {
        const result = decoder.decode(all.subarray(i, i + step));
        for (const view of result.data) out.push(...view);
        done = result.done;
      }
      if (!done) fail("no end");
      sameBytes(Uint8Array.from(out), Uint8Array.from(pieces.flatMap((p) => [...p])), "data");
    },
  },
  {
    name: "websocket-decode",
    description: "WebSocketDecoder on any bytes yields messages or WebSocketProtocolError",
    arbitrary: fc.tuple(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          fc.tuple(
            fc.integer({ min: 0, max: 255 }),
            fc.integer({ min: 0, max: 255 }),
            fc.uint8Array({ maxLength: 30 }),
          ).map(([a, b, rest]) => Uint8Array.of(a, b, ...rest)),
        ),
        { maxLength: 6 },
      ),
      fc.boolean(),
    ),
    check: ([pieces, masked]: [Uint8Array[], boolean]) => {
      typedOrOk(WebSocketProtocolError, () => {
        const decoder = new WebSocketDecoder({ masked, maxMessageSize: 4096 });
        for (const piece of pieces) decoder.push(piece);
      });
    },
  },
  {
    name: "websocket-roundtrip",
    description: "masked and unmasked frames decode to the messages encoded",
    arbitrary: fc.tuple(
      fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 700 }),
      fc.boolean(),
    ),
    check: ([payloads, step, masked]: [Uint8Array[], number, boolean]) => {
      const wire = payloads.map((payload) =>
        encodeWebSocketFrame({ opcode: Opcode.Binary, payload }, masked)
      );
      const all = new Uint8Array(wire.reduce((n, f) => n + f.length, 0));
      let offset = 0;
      for (const frame of wire) {
        all.set(frame, offset);
        offset += frame.length;
      }
      const decoder = new WebSocketDecoder({ masked });
      const out = [];
      for (let i = 0; i < all.length; i += step) {
        out.push(...decoder.push(all.subarray(i, i + step)));
      }
      if (out.length !== payloads.length) fail(`${out.length} messages for ${payloads.length}`);
      out.forEach((message, i) => {
        if (message.type !== "binary") fail(message.type);
        sameBytes(message.data, payloads[i] ?? new Uint8Array(0), "messages");
      });
    },
  },
  {
    name: "conf-parse",
    description: "parseConf() parses or throws ConfSyntaxError with a position (CFG)",
    arbitrary: fc.oneof(
      fc.string({ unit: "binary", maxLength: 100 }),
      GRAMMAR_TEXT,
      MUTATED_DOCUMENT,
    ),
    check: (text: string) => {
      try {
        parseConf(text);
      } catch (error) {
        if (!(error instanceof ConfSyntaxError)) fail(`threw ${String(error)}`);
        if (!(error.line >= 1 && error.column >= 1)) fail("no position");
      }
    },
  },
  {
    name: "conf-roundtrip",
    description: "parseConf(formatConf(tree)) gives back the tree",
    arbitrary: STRING_TREE,
    check: (tree: ConfObject) => {
      const again = parseConf(formatConf(tree)).tree;
      if (JSON.stringify(again) !== JSON.stringify(tree)) fail("trees differ");
    },
  },
  {
    name: "conf-read",
    description: "any parsed tree reads into a configuration plus problems, never a throw",
    arbitrary: fc.oneof(TREE.map((tree) => ({ groom: tree })), TREE),
    check: (tree: ConfObject) => {
      readServerConfig({ tree });
      readAgentConfig({ tree });
      readServerDomainConfig({ tree }, { name: "fuzz.example" });
      const { config } = readAgentDomainConfig({ tree }, { name: "fuzz.example" });
      compileTargets(config.targets);
    },
  },
  {
    name: "conf-text-read",
    description: "mutated configuration texts parse (or fail typed) and read without a throw",
    arbitrary: MUTATED_DOCUMENT,
    check: (text: string) => {
      let tree: ConfValue;
      try {
        tree = parseConf(text).tree;
      } catch (error) {
        if (error instanceof ConfSyntaxError) return;
        throw error;
      }
      readServerConfig({ tree });
      const { config } = readAgentDomainConfig({ tree }, { name: "fuzz.example" });
      compileTargets(config.targets);
    },
  },
  {
    name: "values",
    description: "size, duration and integer parsers never throw and stay in bounds (CFG-18…20)",
    arbitrary: fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.stringMatching(/^[ -]?[0-9.e+]{0,8}[a-zA-Z]{0,3}$/),
    ),
    check: (text: string) => {
      const size = parseSize(text, { min: 65536, max: 2 ** 30, default: 8_000_000 }).value;
      if (!(size >= 65536 && size <= 2 ** 30)) fail(`size ${size}`);
      const duration = parseDuration(text, { min: 5, max: 60 }).value;
      if (!(duration >= 5 && duration <= 60)) fail(`duration ${duration}`);
      const integer = parseInteger(text, { min: 3, max: 1000, default: 20 }).value;
      if (!(integer >= 3 && integer <= 1000)) fail(`integer ${integer}`);
    },
  },
  {
    name: "backend-authority",
    description:
      "no request head from the server makes the agent plan a backend its targets do not list (ODD-41)",
    arbitrary: fc.tuple(fc.constantFrom("GET", "POST", "CONNECT", "OPTIONS"), HOSTILE_TARGET),
    check: ([method, target]: [string, string]) => {
      // As the agent's session does: parse the head strictly, then plan (AGT-3, AGT-7…AGT-12).
      let head;
      try {
        head =
          parseRequestHead(latin1(`${method} ${target} HTTP/1.1\r\nHost: evil.example:1\r\n\r\n`))
            .head;
      } catch (error) {
        if (error instanceof HttpParseError) return;
        throw error;
      }
      for (const chosen of TARGETS) {
        try {
          const plan = planBackendRequest(head, chosen);
          if (!LISTED.has(`${plan.host}:${plan.port}`)) {
            fail(`${method} ${target} via ${chosen.name} → ${plan.host}:${plan.port}`);
          }
          const line = new TextDecoder().decode(plan.head).split("\r\n")[0] ?? "";
          if (!line.startsWith(`${method} /`) && line !== `${method} * HTTP/1.1`) {
            fail(`request line "${line}"`);
          }
        } catch (error) {
          if (!(error instanceof BackendRequestError)) throw error;
        }
      }
    },
  },
] as unknown as FuzzProperty<never>[];

// ---- worker --------------------------------------------------------------------------------

/** Messages from the worker. */
type Report =
  | { readonly type: "start"; readonly name: string }
  | { readonly type: "progress"; readonly name: string; readonly runs: number }
  | {
    readonly type: "done";
    readonly name: string;
    readonly runs: number;
    readonly ms: number;
    readonly slowestMs: number;
    readonly failure?: string;
  };

/** Runs the properties named in `names` with `seed` and `runs`, reporting to the parent. */
function runInWorker(
  post: (report: Report) => void,
  options: { seed: number; runs: number; names: readonly string[] },
): void {
  for (const property of PROPERTIES.filter((p) => options.names.includes(p.name))) {
    post({ type: "start", name: property.name });
    let runs = 0;
    let slowestMs = 0;
    const started = performance.now();
    const result = fc.check(
      fc.property(property.arbitrary, (value: never) => {
        runs++;
        if (runs % PROGRESS_EVERY === 0) post({ type: "progress", name: property.name, runs });
        const t0 = performance.now();
        property.check(value);
        const ms = performance.now() - t0;
        slowestMs = Math.max(slowestMs, ms);
        if (ms > SLOW_INPUT_MS) fail(`one input took ${ms.toFixed(0)} ms`);
      }),
      { seed: options.seed, numRuns: options.runs },
    );
    let failure: string | undefined;
    if (result.failed) {
      const example = fc.stringify(result.counterexample).slice(0, 2000);
      const error = result.errorInstance instanceof Error
        ? result.errorInstance.message
        : String(result.errorInstance);
      failure = `${error}\n    counterexample: ${example}\n    replay: --seed ${result.seed}` +
        ` --only ${property.name} (path ${result.counterexamplePath})`;
    }
    post({
      type: "done",
      name: property.name,
      runs,
      ms: performance.now() - started,
      slowestMs,
      ...(failure === undefined ? {} : { failure }),
    });
  }
}

// ---- main ----------------------------------------------------------------------------------

function parseArgs(args: readonly string[]): { seed: number; runs: number; names: string[] } {
  let seed = Math.floor(Math.random() * 2 ** 31);
  let runs = DEFAULT_RUNS;
  let names = PROPERTIES.map((p) => p.name);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1] ?? "";
    if (arg === "--seed") seed = Number.parseInt(value, 10), i++;
    else if (arg === "--runs") runs = Number.parseInt(value, 10), i++;
    else if (arg === "--only") names = value.split(","), i++;
    else if (arg === "--list") {
      for (const p of PROPERTIES) console.log(`${p.name.padEnd(24)} ${p.description}`);
      Deno.exit(0);
    } else throw new TypeError(`Unknown argument "${arg}" (use --seed, --runs, --only, --list)`);
  }
  const unknown = names.filter((name) => !PROPERTIES.some((p) => p.name === name));
  if (unknown.length > 0) throw new TypeError(`Unknown property: ${unknown.join(", ")}`);
  if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs < 1) {
    throw new TypeError("--seed and --runs take integers (runs at least 1)");
  }
  return { seed, runs, names };
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  console.log(
    `fuzz: seed ${options.seed}, ${options.runs} runs per property, ${options.names.length} properties`,
  );
  console.log(`fuzz: replay with  deno task fuzz --seed ${options.seed} --runs ${options.runs}`);
  const worker = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
  const started = performance.now();
  let total = 0;
  const failures: string[] = [];
  let current = "";
  let progress = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const finished = Promise.withResolvers<void>();
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const hang = `no progress for ${WATCHDOG_MS} ms after ${progress} inputs: an input loops`;
      console.log(`${current.padEnd(24)} HUNG   ${hang}`);
      console.log(`    replay: --seed ${options.seed} --only ${current}`);
      failures.push(`${current}: ${hang}`);
      worker.terminate();
      finished.resolve();
    }, WATCHDOG_MS);
  };
  let done = 0;
  worker.onmessage = (event: MessageEvent<Report>) => {
    arm();
    const report = event.data;
    if (report.type === "start") [current, progress] = [report.name, 0];
    if (report.type === "progress") progress = report.runs;
    if (report.type !== "done") return;
    total += report.runs;
    const verdict = report.failure === undefined ? "ok" : "FAILED";
    console.log(
      `${report.name.padEnd(24)} ${verdict.padEnd(6)} ${String(report.runs).padStart(7)} inputs` +
        `  ${(report.ms / 1000).toFixed(1).padStart(6)} s  slowest ${
          report.slowestMs.toFixed(1)
        } ms`,
    );
    if (report.failure !== undefined) {
      console.log(`    ${report.failure}`);
      failures.push(`${report.name}: ${report.failure}`);
    }
    if (++done === options.names.length) finished.resolve();
  };
  worker.onerror = (event) => {
    event.preventDefault();
    failures.push(`${current}: the worker failed: ${event.message}`);
    finished.resolve();
  };
  arm();
  worker.postMessage(options);
  await finished.promise;
  clearTimeout(timer);
  worker.terminate();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `fuzz: ${total} inputs in ${seconds} s, ${failures.length} failed properties (seed ${options.seed})`,
  );
  return failures.length === 0 ? 0 : 1;
}

const scope = globalThis as unknown as {
  name?: string;
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
};
if (scope.name === WORKER_NAME) {
  scope.onmessage = (event: MessageEvent<{ seed: number; runs: number; names: string[] }>) => {
    runInWorker((report) => scope.postMessage(report), event.data);
  };
} else if (import.meta.main) {
  Deno.exit(await main());
}
