/**
 * The system under test of `deno task bench`, started as users start it: the bench backend, a
 * groom server process and a groom agent process from configuration files, real TLS (the test
 * certificates, verified by the agent through `DENO_CERT`, the path users with real certificates
 * run), OS-chosen ports on 127.0.0.1; readiness is read from the log lines (`listen`, `domain`
 * `connect`). Extra domains (one tunnel each) can be added for the memory figures.
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GROOM_FLAGS } from "../permissions.ts";
import { Child, isEvent, logRecord } from "./procs.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TLS = join(ROOT, "tests", "testdata", "tls");
/** The test CA, trusted by the agent and the clients. */
export const CA_FILE = join(TLS, "ca.pem");
/** Exactly the flags groom's binaries are built with, so the bench measures what users run. */
const RUN_FLAGS = GROOM_FLAGS;
/** Every request of the bench fits: 1,000 slow requests at once (the directive's maximum). */
const CONCURRENCY = 1000;
/** Uploads of 100 MiB must pass `body_size`. */
const BODY_SIZE = "1GB";
/** The domain every figure uses. */
export const DOMAIN = "localhost";

/** Most extra domains the bench's server certificate names. */
export const MAX_EXTRA_DOMAINS = 128;

/** Name of the `i`-th extra domain (1-based). */
function extraName(i: number): string {
  return `d${i}.${DOMAIN}`;
}

/**
 * Issues the server's certificate with the test CA, naming `localhost` and every extra domain:
 * rustls does not accept the test certificate's `*.localhost` for `d1.localhost` (a wildcard
 * needs two labels after it), and the agent sends its domain as SNI. Needs `openssl`; returns
 * `undefined` without it (the extra domains then use `insecure`, node:tls, and the report says so).
 */
async function issueCertificate(dir: string): Promise<{ cert: string; key: string } | undefined> {
  const key = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  const cert = join(dir, "server.pem");
  const names = ["DNS:localhost", "IP:127.0.0.1"];
  for (let i = 1; i <= MAX_EXTRA_DOMAINS; i++) names.push(`DNS:${extraName(i)}`);
  await Deno.writeTextFile(
    ext,
    `subjectAltName=${names.join(",")}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  const run = async (args: string[]) =>
    (await new Deno.Command("openssl", { args, stdout: "null", stderr: "null" }).output()).success;
  try {
    const ok = await run([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      csr,
      "-subj",
      "/CN=localhost",
    ]) && await run([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      CA_FILE,
      "-CAkey",
      join(TLS, "ca.key"),
      "-CAserial",
      join(dir, "ca.srl"),
      "-CAcreateserial",
      "-out",
      cert,
      "-days",
      "2",
      "-extfile",
      ext,
    ]);
    return ok ? { cert, key } : undefined;
  } catch {
    return undefined; // no openssl
  }
}

/** The running system under test. */
export interface Stack extends AsyncDisposable {
  readonly backend: Child;
  readonly server: Child;
  readonly agent: Child;
  /** Backend ports: plain HTTP (the agent's target) and HTTPS (the direct reference). */
  readonly backendPorts: { readonly plain: number; readonly tls: number };
  /** The groom server's HTTPS port. */
  readonly serverPort: number;
  /** The tunnel's sub-protocol (`groom` v1 or `groom2` v2), as the server logged it. */
  readonly protocol: string;
  /** Whether the extra domains' agents verify the server (`verified`) or skip it (`insecure`). */
  readonly extraDomainTls: "verified" | "insecure";
  /** Adds domains `d1.localhost`… until `count` extra tunnels are connected. */
  addDomains(count: number): Promise<void>;
  /** Removes the extra domains again and waits for their tunnels to close. */
  removeDomains(): Promise<void>;
}

function serverDomain(secret: string): string {
  return `groom\n{\n    active = yes\n    secret = "${secret}"\n    concurrency = ${CONCURRENCY}\n` +
    `    body_size = ${BODY_SIZE}\n    transaction = yes\n}\n`;
}

function agentDomain(
  secret: string,
  serverPort: number,
  backendPort: number,
  insecure = false,
): string {
  return `groom\n{\n    active = yes\n    secret = "${secret}"\n    remote = "127.0.0.1:${serverPort}"\n` +
    (insecure ? "    insecure = yes\n" : "") +
    `    concurrency = ${CONCURRENCY}\n    body_size = ${BODY_SIZE}\n` +
    `    targets\n    {\n        active = [ backend ]\n        backend\n        {\n` +
    `            target = "http://127.0.0.1:${backendPort}"\n        }\n    }\n}\n`;
}

/** Options of {@linkcode startStack}. */
export interface StackOptions {
  /** Environment added to the groom processes (e.g. `GROOM_AGENT_PROTOCOLS`). */
  readonly env?: Record<string, string>;
  /** Extra `deno run` flags of the server (e.g. `--cpu-prof`). */
  readonly serverFlags?: readonly string[];
  /** Extra `deno run` flags of the agent. */
  readonly agentFlags?: readonly string[];
}

/** Starts backend, server and agent; resolves once the tunnel is connected on both sides. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "groom-bench-" });
  const children: Child[] = [];
  const cleanup = async () => {
    for (const child of children.reverse()) await child[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const sub of ["server", "agent"]) await Deno.mkdir(join(dir, sub));
    const secret = crypto.randomUUID();
    const env = { ...options.env };
    const backend = new Child("backend", Deno.execPath(), [
      "run",
      "-A",
      join(ROOT, "scripts", "bench", "backend.ts"),
    ]);
    children.push(backend);
    const backendPorts = JSON.parse(await backend.waitFor((line) => line.startsWith("{"))) as {
      plain: number;
      tls: number;
    };

    const issued = await issueCertificate(dir);
    const serverCert = issued ?? {
      cert: join(TLS, "localhost.pem"),
      key: join(TLS, "localhost.key"),
    };
    const serverConf = join(dir, "server.conf");
    await Deno.writeTextFile(
      serverConf,
      `groom\n{\n    mode = server\n    log\n    {\n        system = "console(output=stdout,time=no)"\n    }\n` +
        `    listen = [ "127.0.0.1:0,${serverCert.cert},${serverCert.key}" ]\n` +
        `    domains = "${join(dir, "server")}"\n    write_timeout = 60s\n}\n`,
    );
    await Deno.writeTextFile(join(dir, "server", DOMAIN), serverDomain(secret));
    const server = new Child("server", Deno.execPath(), [
      "run",
      ...RUN_FLAGS,
      ...(options.serverFlags ?? []),
      join(ROOT, "main.ts"),
      serverConf,
    ], env);
    children.push(server);
    const listen = logRecord(await server.waitFor(isEvent("listen")));
    const serverPort = Number(String(listen?.address).split(":").pop());

    const agentConf = join(dir, "agent.conf");
    await Deno.writeTextFile(
      agentConf,
      `groom\n{\n    mode = agent\n    log\n    {\n        system = "console(output=stdout,time=no)"\n    }\n` +
        `    domains = "${join(dir, "agent")}"\n    write_timeout = 60s\n}\n`,
    );
    await Deno.writeTextFile(
      join(dir, "agent", DOMAIN),
      agentDomain(secret, serverPort, backendPorts.plain),
    );
    const agent = new Child("agent", Deno.execPath(), [
      "run",
      ...RUN_FLAGS,
      ...(options.agentFlags ?? []),
      join(ROOT, "main.ts"),
      agentConf,
    ], {
      ...env,
      DENO_CERT: CA_FILE,
    });
    children.push(agent);
    await agent.waitFor(isEvent("domain", { action: "connect", domain: DOMAIN }));
    await server.waitFor(isEvent("domain", { action: "connect", domain: DOMAIN }));
    const tunnel = logRecord(await server.waitFor(isEvent("tunnel", { domain: DOMAIN })));

    let extra = 0;
    return {
      backend,
      server,
      agent,
      backendPorts,
      serverPort,
      protocol: String(tunnel?.protocol ?? "groom"),
      extraDomainTls: issued === undefined ? "insecure" : "verified",
      async addDomains(count) {
        if (count > MAX_EXTRA_DOMAINS) {
          throw new RangeError(`Cannot add ${count} domains: at most ${MAX_EXTRA_DOMAINS}`);
        }
        for (let i = extra + 1; i <= count; i++) {
          await Deno.writeTextFile(join(dir, "server", extraName(i)), serverDomain(secret));
        }
        // The server must know a domain before its agent dials, or the agent backs off.
        await Promise.all(
          Array.from(
            { length: count },
            (_, i) =>
              server.waitFor(isEvent("domain", { action: "load", domain: extraName(i + 1) })),
          ),
        );
        for (let i = extra + 1; i <= count; i++) {
          await Deno.writeTextFile(
            join(dir, "agent", extraName(i)),
            agentDomain(secret, serverPort, backendPorts.plain, issued === undefined),
          );
        }
        extra = Math.max(extra, count);
        await Promise.all(
          Array.from(
            { length: count },
            (_, i) =>
              server.waitFor(isEvent("domain", { action: "connect", domain: extraName(i + 1) })),
          ),
        ).catch((error) => {
          throw new Error(`${error.message}\nagent:\n${agent.tail()}`);
        });
      },
      async removeDomains() {
        // The agent logs no `remove`: its tunnel's disconnect and the server's remove tell.
        const waits = Array.from({ length: extra }, (_, i) => [
          agent.waitFor(isEvent("domain", { action: "disconnect", domain: extraName(i + 1) })),
          server.waitFor(isEvent("domain", { action: "remove", domain: extraName(i + 1) })),
        ]).flat();
        for (let i = 1; i <= extra; i++) {
          await Deno.remove(join(dir, "agent", extraName(i))).catch(() => {});
          await Deno.remove(join(dir, "server", extraName(i))).catch(() => {});
        }
        await Promise.all(waits);
        extra = 0;
      },
      [Symbol.asyncDispose]: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
