/**
 * Replays the `agent_*` recordings of groom 1.3 (tests/testdata/frames, README there) against
 * this agent: the recorded server→agent messages go through a real tunnel `Mux` to a session,
 * whose backend is a real TCP server answering with the recorded backend bytes. What the agent
 * sends to the backend must equal the recorded `a>b` bytes (the relay port in `Host` normalised)
 * and what it sends to the server the recorded `a>s` messages (`Date` values normalised,
 * consecutive BODY messages joined: their split points follow socket reads, README §7.5).
 *
 * Deliberate differences from groom 1.3 do not show in these recordings: the head is sent before
 * the first body read (ODD-8) but the message order is the same, and no recording has backend
 * bytes in the same read as a `101` head (ODD-6). Scheduling: a server message is sent once the
 * agent has sent as many messages as precede it in the recording; a backend write waits for the
 * request bytes that precede it and, after the first, for one more BODY or RAW message from the
 * agent (each recorded backend read produced at least one), so an ABRT lands where it did.
 * @module
 */

import { concatBytes } from "../../src/protocol/mod.ts";
import assert from "node:assert/strict";
import { decodeFrame, type Frame } from "../../src/protocol/mod.ts";
import { MemoryTransport, Mux } from "../../src/tunnel/mod.ts";
import {
  adaptStream,
  type BackendTimeouts,
  compileTargets,
  SessionGroup,
  type SessionRouting,
} from "../../src/agent/mod.ts";

const FRAMES_DIR = new URL("../testdata/frames/", import.meta.url);
/** The port of the recording relay in front of the backend (README §4.1). */
const RECORDED_BACKEND_PORT = 64946;
const DEFAULT_TIMEOUTS: BackendTimeouts = {
  connectTimeoutMs: 5_000,
  readTimeoutMs: 10_000,
  writeTimeoutMs: 20_000,
};

interface RecordedMessage {
  readonly direction: "s>a" | "a>s";
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Uint8Array;
}

type BackendEvent =
  | { readonly direction: "a>b" | "b>a"; readonly bytes: Uint8Array }
  | { readonly direction: "a>b" | "b>a"; readonly eof: true };

function hexBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return bytes;
}

/** The payload of a recorded line: `-`, hex, or a `bin:` file (README §2.1). */
function payloadOf(tokens: readonly string[], length: number): Uint8Array {
  const bin = tokens.find((token) => token.startsWith("bin:"));
  const bytes = bin !== undefined
    ? Deno.readFileSync(new URL(bin.slice(4), FRAMES_DIR))
    : tokens[0] === "-" || tokens.length === 0
    ? new Uint8Array(0)
    : hexBytes(tokens[0] ?? "");
  assert.equal(bytes.length, length, `payload length of ${tokens.join(" ").slice(0, 60)}`);
  return bytes;
}

function dataLines(file: string): string[][] {
  return Deno.readTextFileSync(new URL(file, FRAMES_DIR)).split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("#"))
    .map((line) => line.trim().split(/\s+/));
}

function readFrames(name: string): RecordedMessage[] {
  return dataLines(`${name}.frames`).map(([direction, flags, id, length, ...rest]) => ({
    direction: direction === "s>a" ? "s>a" : "a>s",
    flags: Number.parseInt(flags ?? "", 16),
    streamId: Number(id),
    payload: payloadOf(rest, Number(length)),
  }));
}

function readBackend(name: string): BackendEvent[] {
  return dataLines(`${name}.backend`).map(([direction, _conn, length, ...rest]) => {
    const dir = direction === "a>b" ? "a>b" : "b>a";
    return length === "EOF"
      ? { direction: dir, eof: true }
      : { direction: dir, bytes: payloadOf(rest, Number(length)) };
  });
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let at = 0; at < bytes.length; at += 8192) {
    text += String.fromCharCode(...bytes.subarray(at, at + 8192));
  }
  return text;
}

function message(flags: number, streamId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 4);
  out.set(payload);
  out.set(
    [flags, (streamId >> 16) & 0xff, (streamId >> 8) & 0xff, streamId & 0xff],
    payload.length,
  );
  return out;
}

/** A comparable view of agent→server messages: BODY runs joined, `Date` values masked. */
function normalise(messages: readonly { flags: number; payload: Uint8Array }[]): string[] {
  const out: { flags: number; text: string }[] = [];
  for (const { flags, payload } of messages) {
    let text = latin1(payload);
    if ((flags & 0x01) !== 0) text = text.replace(/\r\nDate: [^\r]*\r\n/, "\r\nDate: <date>\r\n");
    const last = out.at(-1);
    const isBody = (flags & ~0x80) === 0x02;
    if (isBody && last !== undefined && last.flags === 0x02) {
      last.flags = flags;
      last.text += text;
    } else {
      out.push({ flags, text });
    }
  }
  return out.map(({ flags, text }) =>
    `0x${flags.toString(16).padStart(2, "0")} ${text.length} ${
      text.length > 600 ? `${text.slice(0, 300)}…${text.slice(-100)}` : JSON.stringify(text)
    }`
  );
}

/** Notifies waiters whenever something is appended. */
class Progress {
  #waiters: (() => void)[] = [];

  notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  async until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

/** The recorded backend, replayed on a real socket; resolves with the bytes the agent sent. */
async function replayBackend(
  listener: Deno.Listener,
  events: readonly BackendEvent[],
  agent: { count(): number; progress: Progress },
): Promise<Uint8Array | undefined> {
  if (events.length === 0) return undefined;
  const conn = await listener.accept();
  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  let agentClosed = false;
  const progress = agent.progress;
  const reading = (async () => {
    const buffer = new Uint8Array(65_536);
    try {
      for (;;) {
        const count = await conn.read(buffer);
        if (count === null) break;
        received.push(buffer.slice(0, count));
        receivedBytes += count;
        progress.notify();
      }
    } catch {
      // A reset ends the request stream too.
    }
    agentClosed = true;
    progress.notify();
  })();
  try {
    let expected = 0;
    let writes = 0;
    let countAtLastWrite = 0;
    for (const event of events) {
      if (event.direction === "a>b") {
        if ("bytes" in event) expected += event.bytes.length;
        continue;
      }
      const wanted = expected;
      await progress.until(() => receivedBytes >= wanted || agentClosed);
      if (writes > 0) {
        const before = countAtLastWrite;
        await progress.until(() => agent.count() > before || agentClosed);
      }
      if (agentClosed) break;
      countAtLastWrite = agent.count();
      if ("eof" in event) {
        await conn.closeWrite();
        continue;
      }
      let offset = 0;
      while (offset < event.bytes.length) offset += await conn.write(event.bytes.subarray(offset));
      writes++;
    }
  } catch {
    // The agent closed the connection while we wrote: what it sent is compared below.
  }
  await reading;
  conn.close();
  return concatBytes(received);
}

interface ReplayResult {
  readonly agentToServer: readonly { flags: number; payload: Uint8Array }[];
  readonly agentToBackend: Uint8Array | undefined;
  readonly backendPort: number;
}

async function replay(name: string, timeouts: BackendTimeouts): Promise<ReplayResult> {
  const frames = readFrames(name);
  const backendEvents = readBackend(name);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const downPort = closed.addr.port;
  closed.close();
  const { targets, problems } = compileTargets([
    { name: "down", path: "^/down", target: `http://127.0.0.1:${downPort}` },
    { name: "default", target: `http://127.0.0.1:${listener.addr.port}` },
  ]);
  assert.deepEqual(problems, []);
  const routing: SessionRouting = { domain: "golden.test", targets, concurrency: 20 };

  const [serverEnd, agentEnd] = MemoryTransport.pair();
  const sent: Frame[] = [];
  const progress = new Progress();
  serverEnd.onMessage = (bytes) => {
    sent.push(decodeFrame(bytes.slice()));
    progress.notify();
  };
  const group = new SessionGroup({
    sessionOptions: () => ({ timeouts, now: () => new Date("2026-11-25T00:00:00Z") }),
  });
  const mux = new Mux(agentEnd, {
    role: "agent",
    onStream: (stream) => group.start(adaptStream(stream), routing),
  });
  const backend = replayBackend(listener, backendEvents, {
    // Body and raw messages: each recorded backend read produced at least one.
    count: () => sent.filter((frame) => frame.kind === "body" || frame.kind === "raw").length,
    progress,
  });
  try {
    let agentBefore = 0;
    for (const recorded of frames) {
      if (recorded.direction === "a>s") {
        agentBefore++;
        continue;
      }
      const wanted = agentBefore;
      await progress.until(() => sent.length >= wanted);
      serverEnd.send(message(recorded.flags, recorded.streamId, recorded.payload));
    }
    await progress.until(() => sent.length > 0);
    await group.settled();
    const agentToBackend = await backend;
    return {
      agentToServer: sent.map((frame) => ({ flags: flagsOf(frame), payload: frame.payload })),
      agentToBackend,
      backendPort: listener.addr.port,
    };
  } finally {
    mux.close();
    serverEnd.close();
    listener.close();
    await backend.catch(() => {});
  }
}

function flagsOf(frame: Frame): number {
  switch (frame.kind) {
    case "head":
      return 0x41 | (frame.upgrade ? 0x20 : 0) | (frame.end ? 0x80 : 0);
    case "body":
      return 0x02 | (frame.end ? 0x80 : 0);
    case "raw":
      return 0x04 | (frame.end ? 0x80 : 0);
    case "abort":
      return 0x08;
  }
}

const CASES: readonly { name: string; timeouts?: Partial<BackendTimeouts> }[] = [
  { name: "agent_get" },
  { name: "agent_post_cl" },
  { name: "agent_post_large" },
  { name: "agent_get_large" },
  { name: "agent_backend_truncated" },
  { name: "agent_post_chunked" },
  { name: "agent_head" },
  { name: "agent_upgrade" },
  { name: "agent_abort" },
  { name: "agent_backend_down" },
  { name: "agent_bad_request" },
  // The recording waited for the default 20 s write_timeout; 200 ms shows the same 504.
  { name: "agent_backend_timeout", timeouts: { writeTimeoutMs: 200 } },
];

Deno.test("the agent replays every agent_* recording of groom 1.3 byte for byte (PROTO-20…PROTO-27, AGT-3…AGT-14)", async (t) => {
  const recorded = [...Deno.readDirSync(FRAMES_DIR)]
    .map((entry) => entry.name)
    .filter((file) => /^agent_.*\.frames$/.test(file))
    .map((file) => file.replace(/\.frames$/, ""))
    .sort();
  assert.equal(recorded.length, 12);
  assert.deepEqual(recorded, CASES.map((c) => c.name).sort(), "every recording has a case");
  for (const { name, timeouts } of CASES) {
    await t.step(name, async () => {
      const result = await replay(name, { ...DEFAULT_TIMEOUTS, ...timeouts });
      const frames = readFrames(name);
      const expectedToServer = frames.filter((frame) => frame.direction === "a>s");
      assert.deepEqual(normalise(result.agentToServer), normalise(expectedToServer));
      const expectedToBackend = concatBytes(
        readBackend(name).flatMap((event) =>
          event.direction === "a>b" && "bytes" in event ? [event.bytes] : []
        ),
      );
      if (expectedToBackend.length === 0) {
        assert.equal(result.agentToBackend, undefined);
        return;
      }
      const actual = latin1(result.agentToBackend ?? new Uint8Array(0)).replaceAll(
        `127.0.0.1:${result.backendPort}`,
        `127.0.0.1:${RECORDED_BACKEND_PORT}`,
      );
      assert.equal(actual, latin1(expectedToBackend));
    });
  }
});
