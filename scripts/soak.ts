/**
 * The soak run (issue 8): a groom server process and one agent process per domain, real TLS on
 * loopback, the sample backend in this process, and a bounded mix of traffic for a few minutes:
 * downloads and uploads of random sizes (plain and chunked, HTTP/1.1 and HTTP/2), Server-Sent
 * Events and WebSocket echoes, spread over several domains, while the agents' tunnels break at
 * random (the first agent's through a relay that cuts it, the others killed with SIGKILL or
 * stopped with SIGTERM and started again) and the server reloads (SIGHUP). Every body is checked
 * (SHA-256 of the deterministic pattern, the SSE sequence, the WebSocket echoes), every request
 * has a deadline, and the RSS of every process is sampled.
 *
 * Pass conditions: zero corrupted bodies, zero lost requests (no answer and no error within the
 * deadline), and flat server memory (its RSS at the end within 25 % + 32 MiB of its level after
 * the first minute, or the first third of a shorter run). Failed requests (an error status or a visibly cut body while a tunnel was
 * down) are expected and counted.
 *
 * ```sh
 * deno task soak                      # 5 minutes, 3 domains, 12 clients, a random seed
 * deno task soak --minutes 1 --seed 7 --clients 8
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { patternBytes, patternDigest, startBackend } from "./sample_backend.ts";
import { isEvent, rssBytes } from "./bench/procs.ts";
import { GroomProcess, logRecord, ROOT } from "../tests/_harness/groom_process.ts";
import { startRelay } from "../tests/_harness/relay.ts";

/** No request may take longer than this without an answer or an error: past it, it is lost. */
export const REQUEST_DEADLINE_MS = 60_000;
/** Period of the RSS samples. */
export const SAMPLE_EVERY_MS = 10_000;
/** Shortest and longest pause between two disturbances (tunnel cut, agent restart, reload). */
export const CHAOS_MIN_MS = 5_000;
export const CHAOS_MAX_MS = 20_000;
/** Largest download, upload and WebSocket message of the mix. */
const MAX_DOWNLOAD = 4 * 1024 * 1024;
const MAX_UPLOAD = 2 * 1024 * 1024;
const MAX_WS_MESSAGE = 256 * 1024;

const TLS = join(ROOT, "tests", "testdata", "tls");
const SECRET = "soak-secret-0123456789";
const MiB = 1024 * 1024;

/** Small seeded PRNG (mulberry32), so a run's choices can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** How one request ended. */
type Outcome = "ok" | "failed" | "cut" | "corrupted" | "lost";
type Kind = "get" | "upload" | "sse" | "websocket";

interface Tally {
  sent: number;
  ok: number;
  /** Answered with an error status (502, 504, 404 while a tunnel is down, 429…). */
  failed: number;
  /** The body or session ended with an error before its end (visible to the client). */
  cut: number;
  corrupted: number;
  lost: number;
  statuses: Record<string, number>;
}

function emptyTally(): Tally {
  return { sent: 0, ok: 0, failed: 0, cut: 0, corrupted: 0, lost: 0, statuses: {} };
}

interface Options {
  minutes: number;
  clients: number;
  domains: number;
  seed: number;
}

function parseArgs(args: readonly string[]): Options {
  const options: Options = {
    minutes: 5,
    clients: 12,
    domains: 3,
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i]?.replace(/^--/, "") ?? "";
    const value = Number(args[i + 1]);
    if (!(key in options) || !Number.isFinite(value) || value <= 0) {
      throw new TypeError(
        `Cannot use "${args[i]} ${args[i + 1]}" (--minutes, --clients, --domains, --seed)`,
      );
    }
    options[key as keyof Options] = value;
  }
  return options;
}

/**
 * Runs `work` with an abort signal that fires at the request deadline. `work` records the outcomes
 * it decides; `lost` (deadline) and `thrown` (the request or body failed: a visible cut) are left
 * to the caller to record.
 */
async function withDeadline(
  work: (signal: AbortSignal) => Promise<Exclude<Outcome, "lost">>,
): Promise<Outcome | "thrown"> {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new Error("deadline"));
  }, REQUEST_DEADLINE_MS);
  try {
    const outcome = await work(controller.signal);
    return expired ? "lost" : outcome;
  } catch {
    return expired ? "lost" : "thrown";
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  const random = prng(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const between = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  console.log(
    `soak: ${options.minutes} min, ${options.domains} domains, ${options.clients} clients, ` +
      `seed ${options.seed} (replay: deno task soak --seed ${options.seed})`,
  );

  const dir = await Deno.makeTempDir({ prefix: "groom-soak-" });
  const backend = startBackend();
  const ca = await Deno.readTextFile(join(TLS, "ca.pem"));
  const domains = Array.from(
    { length: options.domains },
    (_, i) => i === 0 ? "localhost" : `d${i}.localhost`,
  );
  await Deno.mkdir(join(dir, "server"));
  const serverConf = join(dir, "server.conf");
  await Deno.writeTextFile(
    serverConf,
    `groom {\n  mode = server\n  write_timeout = 10s\n` +
      `  log {\n    system = "console(output=stdout,time=no)"\n  }\n` +
      `  listen = [ "127.0.0.1:0,${join(TLS, "localhost.pem")},${join(TLS, "localhost.key")}" ]\n` +
      `  domains = "${join(dir, "server")}"\n}\n`,
  );
  for (const domain of domains) {
    await Deno.writeTextFile(
      join(dir, "server", domain),
      `groom {\n  active = yes\n  secret = "${SECRET}"\n  concurrency = 100\n  body_size = 16MB\n}\n`,
    );
  }
  const server = new GroomProcess([serverConf]);
  const listen = await server.waitFor(isEvent("listen"));
  const port = Number(String(logRecord(listen)?.address).split(":").pop());
  // The first domain's agent reaches the server through a relay the chaos cuts; it never dies.
  const relay = startRelay({ hostname: "127.0.0.1", port });
  const agents = new Map<string, GroomProcess>();
  const startAgent = async (domain: string, index: number) => {
    const folder = join(dir, `agent-${domain}`);
    await Deno.mkdir(folder, { recursive: true });
    const remote = index === 0 ? relay.port : port;
    await Deno.writeTextFile(
      join(folder, domain),
      `groom {\n  active = yes\n  secret = "${SECRET}"\n  remote = "127.0.0.1:${remote}"\n` +
        // Only `localhost` is named by the test certificate (rustls refuses *.localhost below it).
        (domain === "localhost" ? "" : "  insecure = yes\n") +
        `  concurrency = 100\n  body_size = 16MB\n` +
        `  targets {\n    active = [ backend ]\n    backend {\n` +
        `      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n}\n`,
    );
    const conf = join(dir, `agent-${domain}.conf`);
    await Deno.writeTextFile(
      conf,
      `groom {\n  mode = agent\n  log {\n    system = "console(output=stdout,time=no)"\n  }\n` +
        `  domains = "${folder}"\n}\n`,
    );
    // DENO_CERT adds the test CA to the agent's trusted roots, so `localhost` is verified.
    const agent = new GroomProcess([conf], { env: { DENO_CERT: join(TLS, "ca.pem") } });
    agents.set(domain, agent);
    await agent.waitFor(isEvent("domain", { action: "connect" }));
    return agent;
  };
  for (const [index, domain] of domains.entries()) await startAgent(domain, index);

  const h2 = Deno.createHttpClient({ caCerts: [ca], allowHost: true });
  const h1 = Deno.createHttpClient({ caCerts: [ca], allowHost: true, http2: false });
  const tallies: Record<Kind, Tally> = {
    get: emptyTally(),
    upload: emptyTally(),
    sse: emptyTally(),
    websocket: emptyTally(),
  };
  const corruptions: string[] = [];
  const record = (kind: Kind, outcome: Outcome, status?: number) => {
    const tally = tallies[kind];
    tally[outcome]++;
    if (status !== undefined) tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
  };
  const url = (path: string) => `https://127.0.0.1:${port}${path}`;
  const hostOf = (domain: string) => ({ host: `${domain}:${port}` });

  const download = (domain: string) =>
    withDeadline(async (signal) => {
      const size = between(0, MAX_DOWNLOAD);
      const chunked = random() < 0.3;
      const response = await fetch(url(`/download?size=${size}${chunked ? "&chunked" : ""}`), {
        headers: hostOf(domain),
        client: random() < 0.5 ? h1 : h2,
        signal,
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        record("get", "failed", response.status);
        return "failed";
      }
      const hash = createHash("sha256");
      let received = 0;
      for await (const chunk of response.body ?? []) {
        hash.update(chunk);
        received += chunk.length;
      }
      if (received !== size || hash.digest("hex") !== patternDigest(size)) {
        corruptions.push(`GET ${size} bytes (chunked ${chunked}) via ${domain}: got ${received}`);
        record("get", "corrupted", 200);
        return "corrupted";
      }
      record("get", "ok", 200);
      return "ok";
    });

  const upload = (domain: string) =>
    withDeadline(async (signal) => {
      const size = between(0, MAX_UPLOAD);
      const offset = between(0, 1000);
      const bytes = patternBytes(offset, size);
      const chunked = random() < 0.3;
      const body = chunked
        ? new ReadableStream<Uint8Array>({
          start(controller) {
            for (let at = 0; at < size; at += 100_000) {
              controller.enqueue(bytes.subarray(at, at + 100_000));
            }
            controller.close();
          },
        })
        : bytes;
      const response = await fetch(url("/digest"), {
        method: "POST",
        headers: hostOf(domain),
        body,
        client: random() < 0.5 ? h1 : h2,
        signal,
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        record("upload", "failed", response.status);
        return "failed";
      }
      const answer = await response.json();
      const expected = createHash("sha256").update(bytes).digest("hex");
      if (answer.size !== size || answer.sha256 !== expected) {
        corruptions.push(`POST ${size} bytes via ${domain}: backend saw ${JSON.stringify(answer)}`);
        record("upload", "corrupted", 200);
        return "corrupted";
      }
      record("upload", "ok", 200);
      return "ok";
    });

  const sse = (domain: string) =>
    withDeadline(async (signal) => {
      const events = between(2, 12);
      const response = await fetch(url("/sse"), { headers: hostOf(domain), client: h2, signal });
      if (response.status !== 200) {
        await response.body?.cancel();
        record("sse", "failed", response.status);
        return "failed";
      }
      const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      try {
        while (text.split("\n\n").length <= events) {
          const { done, value } = await reader?.read() ?? { done: true, value: "" };
          if (done) {
            record("sse", "cut", 200);
            return "cut";
          }
          text += value;
        }
      } finally {
        await reader?.cancel().catch(() => {});
      }
      const got = text.split("\n\n").slice(0, events);
      const expected = Array.from({ length: events }, (_, i) => `data: event ${i}`);
      if (got.join("|") !== expected.join("|")) {
        corruptions.push(`SSE via ${domain}: ${JSON.stringify(got)}`);
        record("sse", "corrupted", 200);
        return "corrupted";
      }
      record("sse", "ok", 200);
      return "ok";
    });

  const websocket = (domain: string) =>
    withDeadline(async (signal) => {
      const socket = new WebSocket(`wss://127.0.0.1:${port}/ws`, {
        client: h1,
        headers: hostOf(domain),
      } as never);
      socket.binaryType = "arraybuffer";
      const messages = Array.from({ length: between(1, 8) }, () => {
        const size = between(0, MAX_WS_MESSAGE);
        return random() < 0.5 ? "t".repeat(size) : patternBytes(between(0, 100), size);
      });
      const received: (string | Uint8Array)[] = [];
      const outcome = await new Promise<Exclude<Outcome, "lost">>((resolve) => {
        signal.addEventListener("abort", () => resolve("cut"));
        socket.onopen = () => {
          for (const message of messages) socket.send(message);
        };
        socket.onmessage = (event) => {
          received.push(
            typeof event.data === "string" ? event.data : new Uint8Array(event.data),
          );
          if (received.length === messages.length) resolve("ok");
        };
        socket.onclose = (event) => {
          if (received.length === 0 && !event.wasClean) resolve("failed");
          else resolve("cut");
        };
        socket.onerror = () => {};
      });
      try {
        socket.close();
      } catch {
        // Already closed.
      }
      if (outcome !== "ok") {
        record("websocket", outcome);
        return outcome;
      }
      const same = messages.every((message, i) => {
        const got = received[i];
        if (typeof message === "string") return got === message;
        return got instanceof Uint8Array && got.length === message.length &&
          got.every((byte, j) => byte === message[j]);
      });
      if (!same) {
        corruptions.push(`WebSocket via ${domain}: echoes differ`);
        record("websocket", "corrupted");
        return "corrupted";
      }
      record("websocket", "ok", 101);
      return "ok";
    });

  const started = performance.now();
  const deadline = started + options.minutes * 60_000;
  const kinds: [Kind, (domain: string) => Promise<Outcome | "thrown">][] = [
    ["get", download],
    ["get", download],
    ["upload", upload],
    ["sse", sse],
    ["websocket", websocket],
  ];
  const client = async () => {
    while (performance.now() < deadline) {
      const [kind, run] = pick(kinds);
      tallies[kind].sent++;
      const outcome = await run(pick(domains));
      if (outcome === "lost") record(kind, "lost");
      if (outcome === "thrown") record(kind, "cut");
    }
  };

  // Disturbances.
  const disturbances: string[] = [];
  const chaos = (async () => {
    while (performance.now() < deadline - CHAOS_MAX_MS) {
      await new Promise((resolve) => setTimeout(resolve, between(CHAOS_MIN_MS, CHAOS_MAX_MS)));
      const roll = random();
      const elapsed = ((performance.now() - started) / 1000).toFixed(0);
      if (roll < 0.35) {
        relay.cut();
        disturbances.push(`${elapsed}s cut the tunnel of localhost`);
      } else if (roll < 0.85 && domains.length > 1) {
        const index = between(1, domains.length - 1);
        const domain = domains[index] as string;
        const signal = random() < 0.5 ? "SIGKILL" : "SIGTERM";
        const agent = agents.get(domain);
        agent?.kill(signal);
        await agent?.status();
        disturbances.push(`${elapsed}s ${signal} the agent of ${domain}, restarted`);
        await startAgent(domain, index);
      } else {
        server.kill("SIGHUP");
        disturbances.push(`${elapsed}s SIGHUP the server`);
      }
    }
  })();

  // Memory samples.
  const samples: {
    t: number;
    server: number | undefined;
    agent0: number | undefined;
    soak: number;
  }[] = [];
  const sample = () => {
    const agent0 = agents.get(domains[0] as string);
    samples.push({
      t: Math.round((performance.now() - started) / 1000),
      server: rssBytes(server.pid),
      agent0: agent0 === undefined ? undefined : rssBytes(agent0.pid),
      soak: Deno.memoryUsage().rss,
    });
    const last = samples.at(-1);
    const mib = (bytes?: number) => bytes === undefined ? "-" : (bytes / MiB).toFixed(0);
    const sent = Object.values(tallies).reduce((n, t) => n + t.sent, 0);
    console.log(
      `t=${String(last?.t).padStart(4)}s  sent ${sent}  RSS server ${mib(last?.server)} MiB, ` +
        `agent(localhost) ${mib(last?.agent0)} MiB, soak ${mib(last?.soak)} MiB`,
    );
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_EVERY_MS);
  await Promise.all([...Array.from({ length: options.clients }, client), chaos]);
  clearInterval(sampler);
  sample();

  // Report.
  const total = emptyTally();
  for (const tally of Object.values(tallies)) {
    for (const key of ["sent", "ok", "failed", "cut", "corrupted", "lost"] as const) {
      total[key] += tally[key];
    }
  }
  const answered = total.ok + total.failed + total.corrupted;
  console.log("\nsoak: disturbances");
  for (const line of disturbances) console.log(`  ${line}`);
  console.log("\nsoak: per kind (sent / ok / failed status / cut / corrupted / lost; statuses)");
  for (const [kind, tally] of Object.entries(tallies)) {
    console.log(
      `  ${kind.padEnd(9)} ${tally.sent} / ${tally.ok} / ${tally.failed} / ${tally.cut} / ` +
        `${tally.corrupted} / ${tally.lost}   ${JSON.stringify(tally.statuses)}`,
    );
  }
  const serverRss = samples.map((s) => s.server).filter((v) => v !== undefined);
  // The level once the traffic is up (the first minute, or the first third of a short run).
  const warmup = Math.min(60, (options.minutes * 60) / 3);
  const afterWarmup = samples.find((s) => s.t >= warmup)?.server ?? serverRss[0] ?? 0;
  const end = serverRss.at(-1) ?? 0;
  const flat = end <= afterWarmup * 1.25 + 32 * MiB;
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
  console.log(
    `\nsoak: ${total.sent} requests sent, ${answered} answered (${total.ok} ok, ${total.failed} ` +
      `with an error status), ${total.cut} cut visibly, ${total.corrupted} corrupted, ` +
      `${total.lost} lost`,
  );
  console.log(
    `soak: server RSS start ${mib(serverRss[0] ?? 0)}, after warm-up ${mib(afterWarmup)}, ` +
      `max ${mib(Math.max(...serverRss))}, end ${mib(end)} (${flat ? "flat" : "GROWING"})`,
  );
  const agentRss = samples.map((s) => s.agent0).filter((v) => v !== undefined);
  console.log(
    `soak: agent (localhost, never restarted) RSS start ${mib(agentRss[0] ?? 0)}, ` +
      `max ${mib(Math.max(...agentRss))}, end ${mib(agentRss.at(-1) ?? 0)}`,
  );
  for (const line of corruptions.slice(0, 20)) console.log(`  corrupted: ${line}`);
  const pass = total.corrupted === 0 && total.lost === 0 && flat;
  console.log(`soak: ${pass ? "PASS" : "FAIL"}`);

  h1.close();
  h2.close();
  for (const agent of agents.values()) {
    agent.kill("SIGTERM");
    await agent.status();
  }
  server.kill("SIGTERM");
  await server.status();
  await relay.close();
  await backend.close();
  await Deno.remove(dir, { recursive: true });
  return pass ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
