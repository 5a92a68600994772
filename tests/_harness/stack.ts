/**
 * An in-process groom: sample backend, server and agent on 127.0.0.1 with OS-chosen ports and
 * real TLS from tests/testdata/tls, the domain `localhost` connected end to end. `await using`
 * tears everything down; logs are captured for assertions.
 * @module
 */

import { join } from "node:path";
import { readAgentConfig, readServerConfig } from "../../src/config/mod.ts";
import { openLogger, type WritableLike } from "../../src/log/mod.ts";
import { type ServerHandle, startServer } from "../../src/server/mod.ts";
import { type AgentHandle, startAgent } from "../../src/agent/mod.ts";
import { type Backend, startBackend } from "../../scripts/sample_backend.ts";
import { ROOT } from "./groom_process.ts";

/** The test certificate authority and the localhost certificate. */
export const TLS_DIR = join(ROOT, "tests", "testdata", "tls");
/** PEM of the test CA, trusted by the test clients and the agent. */
export const CA_PEM = Deno.readTextFileSync(join(TLS_DIR, "ca.pem"));
/** The agent secret of the stack's domain. */
export const SECRET = "stack-secret-0123456789";

/** Collects log lines in memory. */
export class LogLines implements WritableLike {
  readonly lines: string[] = [];
  #rest = "";
  #waiters: { test: (record: Record<string, unknown>) => boolean; resolve: () => void }[] = [];

  /** Receives formatted output. */
  write(p: Uint8Array): Promise<number> {
    const parts = (this.#rest + new TextDecoder().decode(p)).split("\n");
    this.#rest = parts.pop() ?? "";
    for (const line of parts) {
      this.lines.push(line);
      const record = this.#parse(line);
      for (const waiter of [...this.#waiters]) {
        if (record && waiter.test(record)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    }
    return Promise.resolve(p.length);
  }

  /** Every line parsed as a JSON record. */
  records(): Record<string, unknown>[] {
    return this.lines.map((line) => this.#parse(line)).filter((r) => r !== undefined);
  }

  /** Resolves when a record passing `test` is written (or was already). */
  waitFor(test: (record: Record<string, unknown>) => boolean): Promise<void> {
    if (this.records().some(test)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }

  #parse(line: string): Record<string, unknown> | undefined {
    try {
      return JSON.parse(line.slice(line.indexOf("{")));
    } catch {
      return undefined;
    }
  }
}

/** Options of {@linkcode startStack}. */
export interface StackOptions {
  /** Extra directives of the server's domain file (inside `groom { }`). */
  readonly serverDomain?: string;
  /** Extra directives of the agent's domain file. */
  readonly agentDomain?: string;
  /** Extra server main directives (tree values). */
  readonly server?: Record<string, unknown>;
  /** The server's clock (session expiry, time ranges). */
  readonly now?: () => Date;
}

/** A running stack. */
export interface Stack extends AsyncDisposable {
  readonly dir: string;
  readonly backend: Backend;
  readonly server: ServerHandle;
  readonly agent: AgentHandle;
  readonly serverLog: LogLines;
  readonly accessLog: LogLines;
  readonly agentLog: LogLines;
  /** Port of the server's HTTPS listener. */
  readonly port: number;
  /** fetch through the server to `https://localhost:<port><path>`. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Writes the server's domain file (for reload tests). */
  writeServerDomain(body: string): Promise<void>;
  /** Path of the server's domains folder. */
  readonly serverDomains: string;
}

/** Starts backend, server and agent; resolves once the tunnel of `localhost` is up. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "groom-stack-" });
  const serverDomains = join(dir, "server-domains");
  const agentDomains = join(dir, "agent-domains");
  await Deno.mkdir(serverDomains);
  await Deno.mkdir(agentDomains);
  const backend = startBackend();
  const serverLog = new LogLines();
  const accessLog = new LogLines();
  const agentLog = new LogLines();
  const quiet = { stdout: serverLog, stderr: serverLog };
  const serverDomainFile = (extra: string) =>
    `groom {\n  active = yes\n  secret = "${SECRET}"\n${extra}\n}\n`;
  const writeServerDomain = (body: string) =>
    Deno.writeTextFile(join(serverDomains, "localhost"), body);
  await writeServerDomain(serverDomainFile(options.serverDomain ?? ""));

  const { config: serverConfig } = readServerConfig({
    tree: {
      groom: {
        mode: "server",
        listen: [`127.0.0.1:0,${join(TLS_DIR, "localhost.pem")},${join(TLS_DIR, "localhost.key")}`],
        domains: serverDomains,
        ...options.server,
      },
    },
  });
  const server = await startServer(serverConfig, {
    ...(options.now ? { now: options.now } : {}),
    logger: openLogger("console(output=stdout,time=no) option(level=debug)", quiet),
    accessLogger: openLogger("console(output=stdout,time=no,severity=no)", {
      stdout: accessLog,
      stderr: accessLog,
    }),
  });
  const port = server.listeners[0]?.port ?? 0;
  await Deno.writeTextFile(
    join(agentDomains, "localhost"),
    `groom {\n  active = yes\n  secret = "${SECRET}"\n  remote = "127.0.0.1:${port}"\n` +
      `  targets {\n    active = [ default ]\n    default {\n` +
      `      target = "http://127.0.0.1:${backend.port}"\n    }\n  }\n` +
      `${options.agentDomain ?? ""}\n}\n`,
  );
  const { config: agentConfig } = readAgentConfig({
    tree: { groom: { mode: "agent", domains: agentDomains } },
  });
  const agent = await startAgent(agentConfig, {
    logger: openLogger("console(output=stdout,time=no) option(level=debug)", {
      stdout: agentLog,
      stderr: agentLog,
    }),
    caCerts: [CA_PEM],
  });
  await agent.whenConnected("localhost");
  await server.whenConnected("localhost");

  const client = Deno.createHttpClient({ caCerts: [CA_PEM], allowHost: true });
  const close = async () => {
    client.close();
    await agent.close();
    await server.close();
    await backend.close();
    await Deno.remove(dir, { recursive: true });
  };
  return {
    dir,
    backend,
    server,
    agent,
    serverLog,
    accessLog,
    agentLog,
    port,
    serverDomains,
    writeServerDomain,
    fetch(path, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("host")) headers.set("host", `localhost:${port}`);
      return fetch(`https://127.0.0.1:${port}${path}`, { ...init, headers, client });
    },
    [Symbol.asyncDispose]: close,
  };
}
