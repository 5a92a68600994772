/**
 * Measures the HTTPS listener mechanisms on loopback, to choose between them by numbers (README
 * design section): (a) `Deno.listenTls` + SNI resolver + Deno's internal `serveHttpOnListener`
 * (`startListener`, mechanism `deno`), (b) `node:https` + `SNICallback` (mechanism `node`), and
 * (c) plain `Deno.serve` with one certificate as the reference. For each: keep-alive requests/s
 * for a tiny handler and new TLS connections/s (one request per connection), then for (a) the
 * connections lost when the certificate is reloaded under load. Each server runs in its own
 * process; the load comes from `wrk` when installed, else from Deno clients in this process.
 * Prints a markdown table.
 *
 *   sh scripts/deno.sh run --allow-all --unstable-net scripts/measure_listen.ts [seconds]
 * @module
 */

import { CertStore } from "../src/tls/mod.ts";
import { ListenMechanism, startListener } from "../src/server/mod.ts";

const ROOT = new URL("../", import.meta.url);
const TLS_DIR = new URL("tests/testdata/tls/", ROOT).pathname;
/** Concurrent connections of the load generator: enough to keep one server core busy. */
const CONNECTIONS = 32;
/** Period of the certificate swaps in the reload measurement. */
const SWAP_EVERY_MS = 500;

type Variant = "deno-sni" | "node-sni" | "deno-serve";
const VARIANTS: { id: Variant; label: string }[] = [
  { id: "deno-sni", label: "(a) Deno.listenTls + SNI resolver + serveHttpOnListener" },
  { id: "node-sni", label: "(b) node:https + SNICallback" },
  { id: "deno-serve", label: "(c) Deno.serve, one certificate (reference)" },
];

if (Deno.args[0] === "serve") {
  await serve(Deno.args[1] as Variant, Deno.args[2] === "swap");
} else {
  await main(Number(Deno.args[0] ?? 5));
}

/** Child process: serves "ok" on 127.0.0.1:0, prints the port, runs until killed. */
async function serve(variant: Variant, swap: boolean): Promise<void> {
  const handler = () => new Response("ok");
  if (variant === "deno-serve") {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(TLS_DIR + "localhost.pem"),
      key: await Deno.readTextFile(TLS_DIR + "localhost.key"),
      onListen: ({ port }) => console.log(port),
    }, handler);
    await server.finished;
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "groom_measure_" });
  const names = ["localhost", "other.localhost"];
  const install = async (name: string) => {
    await Deno.copyFile(`${TLS_DIR}${name}.pem`, `${dir}/n.pem`);
    await Deno.copyFile(`${TLS_DIR}${name}.key`, `${dir}/n.key`);
    await Deno.rename(`${dir}/n.pem`, `${dir}/c.pem`);
    await Deno.rename(`${dir}/n.key`, `${dir}/c.key`);
  };
  await install("localhost");
  const store = new CertStore([
    {
      pattern: "^other\\.localhost$",
      cert: TLS_DIR + "other.localhost.pem",
      key: TLS_DIR + "other.localhost.key",
    },
    { pattern: "*", cert: `${dir}/c.pem`, key: `${dir}/c.key` },
  ]);
  const listener = await startListener({ hostname: "127.0.0.1", port: 0, store }, handler, {
    mechanism: variant === "deno-sni" ? ListenMechanism.Deno : ListenMechanism.Node,
    certCheckIntervalMs: 3_600_000,
  });
  console.log(listener.addr.port);
  let swaps = 0;
  if (swap) {
    setInterval(async () => {
      await install(names[++swaps % 2] ?? "localhost");
      await store.refresh();
      console.error(`swaps ${swaps}`);
    }, SWAP_EVERY_MS);
  }
  await listener.finished;
}

/** Starts a server child; returns its port and a stopper that reports the swaps it made. */
async function startChild(variant: Variant, swap = false) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-net",
      import.meta.filename ?? "",
      "serve",
      variant,
      ...(swap ? ["swap"] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`Cannot start the ${variant} server`);
    text += value;
  }
  const stderr = new Response(child.stderr).text();
  return {
    port: Number(text.trim()),
    async stop(): Promise<number> {
      child.kill("SIGTERM");
      await child.status;
      lines.releaseLock();
      await child.stdout.cancel().catch(() => {});
      const swaps = [...(await stderr).matchAll(/swaps (\d+)/g)].at(-1)?.[1];
      return Number(swaps ?? 0);
    },
  };
}

interface Load {
  perSecond: number;
  errors: number;
}

/** Runs wrk; `close` sends `Connection: close` so each request pays a new TLS handshake. */
async function wrk(port: number, seconds: number, close: boolean): Promise<Load> {
  const output = await new Deno.Command("wrk", {
    args: [
      "-t2",
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      ...(close ? ["-H", "Connection: close"] : []),
      `https://127.0.0.1:${port}/`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const perSecond = Number(/Requests\/sec:\s*([\d.]+)/.exec(text)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
    .exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const errors = (socketErrors?.slice(1).reduce((sum, value) => sum + Number(value), 0) ?? 0) +
    non2xx;
  return { perSecond, errors };
}

/** Fallback load without wrk: Deno clients, keep-alive fetch or one connection per request. */
async function denoLoad(port: number, seconds: number, close: boolean): Promise<Load> {
  const ca = await Deno.readTextFile(TLS_DIR + "ca.pem");
  const end = performance.now() + seconds * 1000;
  let count = 0;
  let errors = 0;
  const client = Deno.createHttpClient({ caCerts: [ca] });
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < end) {
      try {
        if (close) {
          const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
          try {
            await conn.write(
              new TextEncoder().encode(
                "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
              ),
            );
            const buffer = new Uint8Array(1024);
            while ((await conn.read(buffer)) !== null) { /* read to the end */ }
          } finally {
            conn.close();
          }
        } else {
          await (await fetch(`https://localhost:${port}/`, { client })).arrayBuffer();
        }
        count++;
      } catch {
        errors++;
      }
    }
  }));
  client.close();
  return { perSecond: count / seconds, errors };
}

async function hasWrk(): Promise<boolean> {
  try {
    return (await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).code !== 127;
  } catch {
    return false;
  }
}

async function main(seconds: number): Promise<void> {
  const useWrk = await hasWrk();
  const load = useWrk ? wrk : denoLoad;
  const tool = useWrk ? `wrk -t2 -c${CONNECTIONS}` : `${CONNECTIONS} Deno clients`;
  const rows: string[] = [];
  for (const { id, label } of VARIANTS) {
    const server = await startChild(id);
    await load(server.port, 1, false); // warm-up
    const keepAlive = await load(server.port, seconds, false);
    const handshakes = await load(server.port, seconds, true);
    await server.stop();
    rows.push(
      `| ${label} | ${Math.round(keepAlive.perSecond)} | ${Math.round(handshakes.perSecond)} | ${
        keepAlive.errors + handshakes.errors
      } |`,
    );
  }
  const reload: string[] = [];
  for (const id of ["deno-sni", "node-sni"] as const) {
    const server = await startChild(id, true);
    const during = await load(server.port, seconds, true);
    const swaps = await server.stop();
    reload.push(
      `| ${id} | ${swaps} | ${Math.round(during.perSecond)} | ${during.errors} | ${
        swaps > 0 ? (during.errors / swaps).toFixed(2) : "-"
      } |`,
    );
  }
  console.log(
    [
      `Loopback, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ECDSA P-256 test certificates, ` +
      `${seconds} s per cell, load: ${tool}.`,
      "",
      "| mechanism | keep-alive req/s | new TLS connections/s (1 request each) | errors |",
      "|---|---|---|---|",
      ...rows,
      "",
      `Certificate reload every ${SWAP_EVERY_MS} ms under new-connection load:`,
      "",
      "| mechanism | reloads | connections/s | failed connections | failed per reload |",
      "|---|---|---|---|---|",
      ...reload,
    ].join("\n"),
  );
}
