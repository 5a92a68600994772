/** Tests of the system events (LOG-10) and the access record (SRV-20, LOG-11). @module */

import assert from "node:assert/strict";
import {
  accessEvent,
  accessPath,
  accessRange,
  accessRecord,
  type AccessRecordInput,
  domainEvent,
  errorEvent,
  listenEvent,
  listenFailedEvent,
  type LogEvent,
  reloadEvent,
  reloadFailedEvent,
  startEvent,
  stopEvent,
  streamEvent,
} from "./events.ts";
import { encodeJson } from "./format.ts";

function line(event: LogEvent): string {
  return `${event.level} ${encodeJson(event.record)}`;
}

const PROCESS = { config: "server.conf", mode: "server", pid: 17933, version: "1.3.2" };

Deno.test("event builders produce exactly the LOG-10 objects and levels", () => {
  const cases: [LogEvent, string][] = [
    [
      startEvent(PROCESS),
      'info {"config":"server.conf","event":"start","mode":"server","pid":17933,"version":"1.3.2"}',
    ],
    [
      reloadEvent({ ...PROCESS, version: "2.0.0" }),
      'info {"config":"server.conf","event":"reload","mode":"server","pid":17933,"version":"2.0.0"}',
    ],
    [
      reloadFailedEvent({
        config: "server.conf",
        mode: "agent",
        error: new SyntaxError("configuration syntax error: x"),
      }),
      'warning {"config":"server.conf","error":"configuration syntax error: x","event":"reload","mode":"agent"}',
    ],
    [
      listenEvent({ listen: "*:443", certificates: "cert.pem,key.pem", mode: "server" }),
      'info {"certificates":"cert.pem,key.pem","event":"listen","listen":"*:443","mode":"server"}',
    ],
    [
      domainEvent({ action: "load", domain: "www.domain.com", mode: "server" }),
      'info {"action":"load","domain":"www.domain.com","event":"domain","mode":"server"}',
    ],
    [
      domainEvent({ action: "update", domain: "www.domain.com", mode: "agent" }),
      'info {"action":"update","domain":"www.domain.com","event":"domain","mode":"agent"}',
    ],
    [
      domainEvent({
        action: "connect",
        domain: "www.domain.com",
        mode: "server",
        remote: "1.2.3.4:5678",
      }),
      'info {"action":"connect","domain":"www.domain.com","event":"domain","mode":"server","remote":"1.2.3.4:5678"}',
    ],
    [
      domainEvent({
        action: "disconnect",
        domain: "www.domain.com",
        mode: "agent",
        remote: "wss://server/.well-known/groom-agent",
      }),
      'info {"action":"disconnect","domain":"www.domain.com","event":"domain","mode":"agent","remote":"wss://server/.well-known/groom-agent"}',
    ],
    [
      errorEvent({
        domain: "www.domain.com",
        error: "unknown domain",
        mode: "server",
        remote: "1.2.3.4:5678",
      }),
      'warning {"domain":"www.domain.com","error":"unknown domain","event":"error","mode":"server","remote":"1.2.3.4:5678"}',
    ],
    [
      errorEvent({
        domain: "server/www.domain.com",
        error: "configuration syntax error: bad",
        mode: "server",
      }),
      'warning {"domain":"server/www.domain.com","error":"configuration syntax error: bad","event":"error","mode":"server"}',
    ],
    [
      streamEvent({ action: "activate", domain: "d", mode: "server", stream: 12 }),
      'debug {"action":"activate","domain":"d","event":"stream","mode":"server","stream":12}',
    ],
    [
      streamEvent({ action: "shutdown", domain: "d", mode: "agent", stream: 12 }),
      'debug {"action":"shutdown","domain":"d","event":"stream","mode":"agent","stream":12}',
    ],
  ];
  for (const [event, expected] of cases) assert.equal(line(event), expected);
  assert.equal(cases.length, 12);
});

Deno.test("stopEvent() and listenFailedEvent() are the new events of ODD-33 and ODD-15", () => {
  assert.equal(
    line(stopEvent({ ...PROCESS, signal: "SIGTERM" })),
    'info {"config":"server.conf","event":"stop","mode":"server","pid":17933,"signal":"SIGTERM","version":"1.3.2"}',
  );
  assert.equal(
    line(stopEvent(PROCESS)),
    'info {"config":"server.conf","event":"stop","mode":"server","pid":17933,"version":"1.3.2"}',
  );
  assert.equal(
    line(
      listenFailedEvent({ listen: "*:443", error: new Error("Address in use"), mode: "server" }),
    ),
    'error {"error":"Address in use","event":"listen","listen":"*:443","mode":"server"}',
  );
});

const REQUEST: AccessRecordInput = {
  start: 1795563910859,
  durationMicros: 4998.4,
  domain: "localhost",
  id: "7d20499a-0c8c-4d1b-b7ac-d90b473e4551",
  method: "GET",
  remote: "127.0.0.1:34620",
  status: 200,
  in: 129,
  out: 535,
  path: "/hello/world",
  query: "x=1",
  userAgent: "curl/7.88.1",
};

Deno.test("accessRecord() reproduces the observed record of SRV-20", () => {
  assert.equal(
    encodeJson(accessRecord(REQUEST)),
    '{"domain":"localhost","duration":4998,"id":"7d20499a-0c8c-4d1b-b7ac-d90b473e4551","in":129,"method":"GET","out":535,"path":"/hello/world?x=1","remote":"127.0.0.1:34620","start":1795563910859,"status":200,"ua":"curl/7.88.1"}',
  );
  assert.equal(accessEvent(REQUEST).level, "info");
});

Deno.test("accessRecord() adds reason, ua, referer and range only when non-empty (SRV-20)", () => {
  const bare = accessRecord({ ...REQUEST, query: "  ", userAgent: "   ", referer: null });
  assert.deepEqual(Object.keys(bare).sort(), [
    "domain",
    "duration",
    "id",
    "in",
    "method",
    "out",
    "path",
    "remote",
    "start",
    "status",
  ]);
  assert.equal(bare.path, "/hello/world");
  const full = accessRecord({
    ...REQUEST,
    status: 0,
    reason: "raw session teardown",
    userAgent: "  ua/1 ",
    referer: " https://example.com/ ",
    range: "bytes=0-499",
  });
  assert.equal(full.reason, "raw session teardown");
  assert.equal(full.ua, "ua/1");
  assert.equal(full.referer, "https://example.com/");
  assert.equal(full.range, "0-499");
  assert.equal(full.status, 0);
  assert.equal(accessRecord({ ...REQUEST, reason: "" }).reason, undefined);
});

Deno.test("accessRange() keeps only a single bytes=A-B range (SRV-20)", () => {
  const cases: [string | null | undefined, string | null][] = [
    ["bytes=0-499", "0-499"],
    ["bytes=500-", "500-"],
    ["bytes=-500", "-500"],
    ["bytes=-", "-"],
    [" bytes=1-2 ", "1-2"],
    ["bytes=0-1,5-6", null],
    ["Bytes=0-1", null],
    ["bytes=a-b", null],
    ["items=0-1", null],
    ["", null],
    [null, null],
    [undefined, null],
  ];
  for (const [header, expected] of cases) assert.equal(accessRange(header), expected, `${header}`);
  assert.equal(cases.length, 12);
});

Deno.test("accessPath() appends the trimmed query when non-empty (SRV-20)", () => {
  assert.equal(accessPath("/a b", "x=1&y=two%20words"), "/a b?x=1&y=two%20words");
  assert.equal(accessPath("/", ""), "/");
  assert.equal(accessPath("/", undefined), "/");
  assert.equal(accessPath("/", " \t"), "/");
});
