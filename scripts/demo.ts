/**
 * `deno task demo`: a sample backend, a groom server and a groom agent on loopback, with the dummy
 * certificate of conf/, the tunnel of the domain `localhost` connected; prints the curl command
 * that shows it working and runs until Ctrl-C. `--self-test` makes the request itself, prints the
 * answer and exits (0 when it worked), which the test suite uses.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readAgentConfig, readServerConfig } from "../src/config/mod.ts";
import { openLogger } from "../src/log/mod.ts";
import { startServer } from "../src/server/mod.ts";
import { startAgent } from "../src/agent/mod.ts";
import { startBackend } from "./sample_backend.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const selfTest = Deno.args.includes("--self-test");
const portArg = Deno.args.find((arg) => arg.startsWith("--port="));
const port = portArg ? Number(portArg.slice("--port=".length)) : 0;
const secret = crypto.randomUUID();
const cert = join(ROOT, "conf", "dummy.pem");
const key = join(ROOT, "conf", "dummy.key");

const dir = await Deno.makeTempDir({ prefix: "groom-demo-" });
await Deno.mkdir(join(dir, "server"));
await Deno.mkdir(join(dir, "agent"));
await Deno.writeTextFile(
  join(dir, "server", "localhost"),
  `groom {\n  active = yes\n  secret = "${secret}"\n}\n`,
);
const log = selfTest ? "" : "console(output=stdout)";
const backend = startBackend();
const server = await startServer(
  readServerConfig({
    tree: {
      groom: {
        mode: "server",
        listen: [`127.0.0.1:${port},${cert},${key}`],
        domains: join(dir, "server"),
      },
    },
  }).config,
  {
    logger: openLogger(log),
    accessLogger: openLogger(selfTest ? "" : "console(output=stdout,severity=no)"),
  },
);
const serverPort = server.listeners[0]?.port ?? 0;
await Deno.writeTextFile(
  join(dir, "agent", "localhost"),
  `groom {\n  active = yes\n  secret = "${secret}"\n  remote = "127.0.0.1:${serverPort}"\n` +
    `  targets {\n    active = [ backend ]\n    backend {\n` +
    `      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n}\n`,
);
const agent = await startAgent(
  readAgentConfig({ tree: { groom: { mode: "agent", domains: join(dir, "agent") } } }).config,
  { logger: openLogger(log), caCerts: [await Deno.readTextFile(cert)] },
);
await agent.whenConnected("localhost");
await server.whenConnected("localhost");

const stop = async () => {
  await agent.close();
  await server.close();
  await backend.close();
  await Deno.remove(dir, { recursive: true });
};

const curl =
  `curl --cacert conf/dummy.pem --resolve localhost:${serverPort}:127.0.0.1 https://localhost:${serverPort}/hello`;
if (selfTest) {
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(cert)],
    allowHost: true,
  });
  const response = await fetch(`https://127.0.0.1:${serverPort}/hello`, {
    client,
    headers: { host: `localhost:${serverPort}` },
  });
  const text = await response.text();
  client.close();
  await stop();
  console.log(`demo self-test: ${response.status} ${text.trim()}`);
  Deno.exit(response.status === 200 ? 0 : 1);
}
console.log(`
groom demo is running: client → server (https://127.0.0.1:${serverPort}, domain "localhost")
  → agent tunnel → sample backend (http://127.0.0.1:${backend.port}). Press Ctrl-C to stop.

Try it:
  ${curl}
`);
const { promise, resolve } = Promise.withResolvers<void>();
Deno.addSignalListener("SIGINT", () => resolve());
await promise;
await stop();
Deno.exit(0);
