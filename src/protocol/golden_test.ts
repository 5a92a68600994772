/**
 * Interop tests against byte-level recordings of groom 1.3 (`tests/testdata/frames/`, copied
 * verbatim from the shared recordings; format in its README §2). Every tunnel message must decode
 * and re-encode byte-exact, every recorded head must re-serialise byte-exact, synthetic statuses
 * must match, and the recorded chunked bodies must decode and re-encode to the same bytes.
 * @module
 */

import { concatBytes } from "./bytes.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  ChunkedDecoder,
  decodeFrame,
  encodeChunk,
  encodeFrame,
  encodeLastChunk,
  findHeadEnd,
  type Frame,
  frameFlags,
  getHeader,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  serializeRequestHead,
  serializeResponseHead,
  synthesizeStatusHead,
} from "./mod.ts";

const FRAMES_DIR = new URL("../../tests/testdata/frames/", import.meta.url);

/** Number of `.frames` files and messages in the recordings (README §5). */
const EXPECTED_FRAME_FILES = 24;
const EXPECTED_MESSAGES = 151;

/** One recorded tunnel message (README §2.1) or backend read (§2.2). */
interface Recorded {
  readonly file: string;
  readonly line: number;
  readonly dir: string;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Uint8Array;
}

function fromHex(text: string): Uint8Array {
  assert.match(text, /^(?:[0-9a-f]{2})*$/, "payload hex");
  const bytes = new Uint8Array(text.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(text.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const latin1 = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

/** Reads a payload token list: `-`, hex, or `sha256:… head256:… bin:…` (verified). */
async function readPayload(tokens: readonly string[], length: number, where: string) {
  const [first = "", second = "", third = ""] = tokens;
  if (first === "-") {
    assert.equal(length, 0, `${where}: "-" with length ${length}`);
    return new Uint8Array(0);
  }
  if (!first.startsWith("sha256:")) {
    const payload = fromHex(first);
    assert.equal(payload.length, length, `${where}: hex length`);
    return payload;
  }
  assert.ok(second.startsWith("head256:") && third.startsWith("bin:"), `${where}: large form`);
  const payload = await Deno.readFile(new URL(third.slice(4), FRAMES_DIR));
  assert.equal(payload.length, length, `${where}: .bin length`);
  assert.equal(sha256(payload), first.slice(7), `${where}: .bin sha256`);
  assert.deepEqual(payload.subarray(0, 256), fromHex(second.slice(8)), `${where}: head256`);
  return payload;
}

async function readFramesFile(file: string): Promise<Recorded[]> {
  const text = await Deno.readTextFile(new URL(file, FRAMES_DIR));
  const messages: Recorded[] = [];
  const lines = text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
  for (const [index, line] of lines.entries()) {
    const [dir = "", flags = "", id = "", length = "", ...rest] = line.split(" ");
    const where = `${file}:${index + 1}`;
    assert.match(dir, /^(?:s>a|a>s)$/, where);
    assert.match(flags, /^0x[0-9a-f]{2}$/, where);
    const payload = await readPayload(rest, Number(length), where);
    messages.push({
      file,
      line: index + 1,
      dir,
      flags: parseInt(flags, 16),
      streamId: Number(id),
      payload,
    });
  }
  return messages;
}

/** Backend TCP streams of one `agent_*.backend` file: per connection, per direction (§2.2). */
async function readBackendFile(file: string): Promise<Map<string, Uint8Array>> {
  const text = await Deno.readTextFile(new URL(file, FRAMES_DIR));
  const parts = new Map<string, Uint8Array[]>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [dir = "", conn = "", length = "", ...rest] = line.split(" ");
    if (length === "EOF") continue;
    const key = `${conn} ${dir}`;
    const payload = await readPayload(rest, Number(length), `${file} ${key}`);
    parts.set(key, [...(parts.get(key) ?? []), payload]);
  }
  return new Map([...parts].map(([key, list]) => [key, concatBytes(list)]));
}

const frameFiles: string[] = [];
for await (const entry of Deno.readDir(FRAMES_DIR)) {
  if (entry.isFile && entry.name.endsWith(".frames")) frameFiles.push(entry.name);
}
frameFiles.sort();
const recordings = new Map<string, Recorded[]>();
for (const file of frameFiles) recordings.set(file, await readFramesFile(file));
const allMessages = [...recordings.values()].flat();

function wireMessage(message: Recorded): Uint8Array {
  const { payload, flags, streamId } = message;
  return concatBytes([
    payload,
    Uint8Array.of(flags, (streamId >> 16) & 0xff, (streamId >> 8) & 0xff, streamId & 0xff),
  ]);
}

function heads(filter: (message: Recorded) => boolean): Recorded[] {
  return allMessages.filter((message) => (message.flags & 0x01) !== 0 && filter(message));
}

Deno.test("golden: the recordings hold 24 .frames files and 151 messages (README §5)", () => {
  assert.equal(frameFiles.length, EXPECTED_FRAME_FILES);
  assert.equal(allMessages.length, EXPECTED_MESSAGES);
});

Deno.test("golden: every recorded message decodes and re-encodes byte-exact (PROTO-15/16)", () => {
  let checked = 0;
  for (const message of allMessages) {
    const where = `${message.file}:${message.line}`;
    const bytes = wireMessage(message);
    const frame = decodeFrame(bytes);
    assert.equal(frameFlags(frame), message.flags, `${where}: flags`);
    assert.equal(frame.streamId, message.streamId, `${where}: stream id`);
    assert.deepEqual(frame.payload, message.payload, `${where}: payload`);
    assert.equal(frame.payload.buffer, bytes.buffer, `${where}: payload is a zero-copy view`);
    assert.deepEqual(encodeFrame(frame), bytes, `${where}: re-encoded`);
    checked++;
  }
  assert.equal(checked, EXPECTED_MESSAGES);
});

Deno.test("golden: the recorded flag bytes are exactly PROTO-16's emitted combinations", () => {
  const seen = new Set(
    allMessages.map((message) => `${message.dir} 0x${message.flags.toString(16)}`),
  );
  assert.deepEqual([...seen].sort(), [
    "a>s 0x2",
    "a>s 0x4",
    "a>s 0x41",
    "a>s 0x61",
    "a>s 0x8",
    "a>s 0x82",
    "a>s 0x84",
    "a>s 0xc1",
    "s>a 0x2",
    "s>a 0x4",
    "s>a 0x41",
    "s>a 0x8",
    "s>a 0x82",
    "s>a 0x84",
  ]);
});

Deno.test("golden: request heads re-serialise byte-exact (PROTO-20)", () => {
  const requests = heads((message) =>
    message.dir === "s>a" && message.file !== "agent_bad_request.frames"
  );
  let checked = 0;
  for (const message of requests) {
    const where = `${message.file}:${message.line}`;
    const { head, framing, mustClose } = parseRequestHead(message.payload);
    assert.equal(mustClose, false, where);
    assert.deepEqual(serializeRequestHead(head), message.payload, `${where}: re-serialised`);
    const chunked = getHeader(head.headers, "transfer-encoding") !== undefined;
    const length = getHeader(head.headers, "content-length");
    assert.deepEqual(
      framing,
      chunked
        ? { kind: "chunked" }
        : length !== undefined
        ? { kind: "length", length: Number(length) }
        : { kind: "none" },
      `${where}: framing`,
    );
    checked++;
  }
  // One HEAD|START per case, except the hand-made unparsable head of agent_bad_request.
  assert.equal(checked, 23);
});

Deno.test("golden: the hand-made unparsable head of agent_bad_request is a 400 (PROTO-24)", () => {
  const [message] = heads((m) => m.dir === "s>a" && m.file === "agent_bad_request.frames");
  assert.ok(message);
  assert.throws(
    () => parseRequestHead(message.payload),
    (error) => error instanceof HttpParseError && error.status === 400,
  );
});

Deno.test("golden: response heads re-serialise byte-exact (PROTO-22)", () => {
  const responses = heads((message) => message.dir === "a>s" && message.flags !== 0xc1);
  let checked = 0;
  for (const message of responses) {
    const where = `${message.file}:${message.line}`;
    const requestHead = recordings.get(message.file)?.find((m) =>
      m.flags === 0x41 && m.dir === "s>a"
    );
    assert.ok(requestHead, where);
    const requestMethod = parseRequestHead(requestHead.payload).head.method;
    const { head, framing } = parseResponseHead(message.payload, { requestMethod });
    assert.deepEqual(serializeResponseHead(head), message.payload, `${where}: re-serialised`);
    if (message.flags === 0x61) {
      assert.equal(head.status, 101, where);
      assert.deepEqual(framing, { kind: "none" }, where);
    } else if (requestMethod === "HEAD") {
      assert.deepEqual(framing, { kind: "none" }, where);
    } else {
      assert.notEqual(framing.kind, "none", where);
    }
    checked++;
  }
  // 24 cases minus the four synthetic statuses and server_abort_beforehead: 16 HEAD|START and
  // 3 HEAD|START|UPGD.
  assert.equal(checked, 19);
});

Deno.test("golden: synthetic statuses equal synthesizeStatusHead() (PROTO-24)", () => {
  const synthetic = heads((message) => message.flags === 0xc1);
  let checked = 0;
  for (const message of synthetic) {
    const where = `${message.file}:${message.line}`;
    const { head, framing } = parseResponseHead(message.payload);
    const date = getHeader(head.headers, "date");
    assert.ok(date, where);
    assert.deepEqual(synthesizeStatusHead(head.status, new Date(date)), message.payload, where);
    assert.deepEqual(framing, { kind: "close" }, where);
    checked++;
  }
  assert.equal(checked, 4);
  const statuses = synthetic.map((m) => latin1(m.payload).slice(9, 12)).sort();
  assert.deepEqual(statuses, ["400", "502", "502", "504"]);
});

Deno.test("golden: chunked request bodies decode and re-encode per message (PROTO-21)", async () => {
  const clientSent = await Deno.readFile(
    new URL("server_post_chunked.client_sent.raw", FRAMES_DIR),
  );
  const headEnd = findHeadEnd(clientSent);
  assert.ok(headEnd > 0);
  const clientDecoder = new ChunkedDecoder();
  const clientResult = clientDecoder.decode(clientSent.subarray(headEnd));
  assert.equal(clientResult.done, true);
  assert.equal(clientResult.consumed, clientSent.length - headEnd);
  const clientData = concatBytes(clientResult.data);
  assert.equal(clientData.length, 12 + 3000 + 5);

  let checked = 0;
  for (const file of ["server_post_chunked.frames", "agent_post_chunked.frames"]) {
    const messages = recordings.get(file) ?? [];
    const bodies = messages.filter((m) => m.dir === "s>a" && (m.flags & 0x02) !== 0);
    assert.equal(bodies.length, 4, file);
    const decoder = new ChunkedDecoder();
    const data: Uint8Array[] = [];
    for (const [index, body] of bodies.entries()) {
      const result = decoder.decode(body.payload);
      assert.equal(result.consumed, body.payload.length, `${file}:${body.line}`);
      const last: boolean = index === bodies.length - 1;
      assert.equal(result.done, last, `${file}:${body.line}`);
      assert.equal(body.flags, last ? 0x82 : 0x02, `${file}:${body.line}`);
      const piece = concatBytes(result.data);
      assert.deepEqual(
        last ? encodeLastChunk() : encodeChunk(piece),
        body.payload,
        `${file}:${body.line}: re-encoded`,
      );
      data.push(piece);
      checked++;
    }
    decoder.finish();
    assert.deepEqual(concatBytes(data), clientData, `${file}: same data as the client sent`);
    // The response echoes the body de-chunked (PROTO-23).
    const echoed = messages.filter((m) => m.dir === "a>s" && (m.flags & 0x02) !== 0);
    assert.deepEqual(concatBytes(echoed.map((m) => m.payload)), clientData, `${file}: echo`);
  }
  assert.equal(checked, 8);
});

Deno.test("golden: agent→backend heads re-serialise and backend bodies match the BODY messages (AGT-12/13, PROTO-23)", async () => {
  let connections = 0;
  let chunkedResponses = 0;
  for (const file of frameFiles.filter((name) => name.startsWith("agent_"))) {
    const name = file.replace(/\.frames$/, "");
    const streams = await readBackendFile(`${name}.backend`);
    const conns = new Set([...streams.keys()].map((key) => key.split(" ")[0]));
    for (const conn of conns) {
      const where = `${name}.backend ${conn}`;
      const toBackend = streams.get(`${conn} a>b`) ?? new Uint8Array(0);
      const requestEnd = findHeadEnd(toBackend);
      assert.ok(requestEnd > 0, where);
      const requestBytes = toBackend.subarray(0, requestEnd);
      const request = parseRequestHead(requestBytes);
      assert.equal(request.head.version, "HTTP/1.1", where);
      assert.deepEqual(serializeRequestHead(request.head), requestBytes, `${where}: request`);
      connections++;

      const fromBackend = streams.get(`${conn} b>a`);
      if (fromBackend === undefined) continue; // agent_backend_timeout: the backend never answers
      const responseEnd = findHeadEnd(fromBackend);
      assert.ok(responseEnd > 0, where);
      const response = parseResponseHead(fromBackend.subarray(0, responseEnd), {
        requestMethod: request.head.method,
      });
      const rest = fromBackend.subarray(responseEnd);
      let body: Uint8Array;
      if (response.framing.kind === "chunked") {
        const decoder = new ChunkedDecoder();
        const result = decoder.decode(rest);
        assert.equal(result.done, true, where);
        decoder.finish();
        body = concatBytes(result.data);
        chunkedResponses++;
      } else if (response.framing.kind === "length") {
        body = rest.subarray(0, response.framing.length);
      } else {
        body = new Uint8Array(0); // HEAD and 101: what follows is not a body
      }
      const relayed = (recordings.get(file) ?? []).filter(
        (m) => m.dir === "a>s" && (m.flags & 0x02) !== 0,
      );
      const relayedBody = concatBytes(relayed.map((m) => m.payload));
      assert.deepEqual(body.subarray(0, relayedBody.length), relayedBody, `${where}: relayed body`);
    }
  }
  // Connections 1-9 and 12 (backend_down and bad_request never reach the backend).
  assert.equal(connections, 10);
  assert.equal(chunkedResponses, 2);
});

Deno.test("golden: the agent's handshake request parses as a GET upgrade (PROTO-3)", async () => {
  const bytes = await Deno.readFile(new URL("handshake_agent_request.txt", FRAMES_DIR));
  const { head, framing } = parseRequestHead(bytes);
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/.well-known/groom-agent");
  assert.equal(getHeader(head.headers, "sec-websocket-protocol"), "groom");
  assert.deepEqual(framing, { kind: "none" });
  const response = await Deno.readFile(new URL("handshake_server_response.txt", FRAMES_DIR));
  const parsed = parseResponseHead(response, { requestMethod: "GET" });
  assert.equal(parsed.head.status, 101);
  assert.deepEqual(parsed.framing, { kind: "none" });
});

Deno.test("golden: decodeFrame() classifies the recorded frames by kind (PROTO-16)", () => {
  const kinds = new Map<string, number>();
  for (const message of allMessages) {
    const frame: Frame = decodeFrame(wireMessage(message));
    const key = frame.kind === "abort"
      ? "abort"
      : frame.kind === "head"
      ? `head${frame.upgrade ? "+upgrade" : ""}${frame.end ? "+end" : ""}`
      : `${frame.kind}${frame.end ? "+end" : ""}`;
    kinds.set(key, (kinds.get(key) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries([...kinds].sort()), {
    abort: 7,
    body: 39,
    "body+end": 40,
    head: 40,
    "head+end": 4,
    "head+upgrade": 3,
    raw: 15,
    "raw+end": 3,
  });
});
