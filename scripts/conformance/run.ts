/**
 * HTTP caching conformance run against our edge, as a real process in front of a scripted origin.
 *
 *   npx node scripts/conformance/run.ts [--set-cookie bypass|strip|store] [--only REGEX] [--concurrency N]
 *                                       [--runtime workerd|miniflare] [--processes N] [--new-connections]
 *                                       [--results PATH] [--json PATH] [--verbose]
 *
 * Checks (scripts/conformance/checks.ts) are modelled on the public HTTP caching test suite (cache-tests.fyi) with
 * the same ids and required / optional / check kinds. Prints a per-group table and writes RESULTS.md (every check
 * that did not pass, with what was expected and what the edge did). Traffic stays on 127.0.0.1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { CHECKS, type Check, type ExpectedHeader, type Kind, type Step } from "./checks.ts";
import { ConformanceOrigin, httpDate } from "./origin.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const { values: args } = parseArgs({
  options: {
    "set-cookie": { type: "string", default: "bypass" },
    only: { type: "string" },
    concurrency: { type: "string", default: "40" },
    results: { type: "string", default: join(import.meta.dirname, "RESULTS.md") },
    verbose: { type: "boolean", default: false },
    runtime: { type: "string", default: "workerd" },
    /**
     * Every request on a connection of its own: with several edge processes the kernel then spreads a check's
     * requests over them (on one connection they all reach the same process).
     */
    "new-connections": { type: "boolean", default: false },
    /** Also writes the outcome of every check as JSON ({ id: { kind, outcome } }), for the test suite. */
    json: { type: "string" },
    processes: { type: "string", default: "1" },
  },
});

const PAUSE_MS = 3_000;
const REQUEST_TIMEOUT_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Outcome = "pass" | "fail" | "setup" | "dependency" | "error";
interface Observed {
  step: number;
  method: string;
  url: string;
  status: number;
  headers: Headers;
  body: string;
}
interface Result {
  check: Check;
  outcome: Outcome;
  message?: string;
  observed: Observed[];
  /** What the origin saw: "#clientNum METHOD [conditional/range headers]". */
  originSaw: string[];
}

class Failure extends Error {
  setup: boolean;
  constructor(setup: boolean, message: string) {
    super(message);
    this.setup = setup;
  }
}
const ensure = (setup: boolean, ok: boolean, message: string) => {
  if (!ok) throw new Failure(setup, message);
};
const isSetup = (step: Step, aspect: NonNullable<Step["setupFor"]>[number]) =>
  step.setup === true || (step.setupFor ?? []).includes(aspect);

// ------------------------------------------------------------------ processes
interface Edge {
  url: string;
  proc: ChildProcess;
  output: () => string;
}

function startEdge(originUrl: string, configPath: string): Promise<Edge> {
  const runtime = ["--runtime", args.runtime!, ...(args.runtime === "workerd" ? ["--processes", args.processes!] : [])];
  const proc = spawn(process.execPath, [join(ROOT, "scripts/edge.ts"), "--origin", originUrl, "--port", "0", "--config", configPath, ...runtime], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  return new Promise((resolveEdge, reject) => {
    const timer = setTimeout(() => {
      stopEdge(proc);
      reject(new Error(`edge not ready within 60 s:\n${out}`));
    }, 60_000);
    proc.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = out.match(/edge ready: (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveEdge({ url: m[1]!, proc, output: () => out });
      }
    });
    proc.stderr!.on("data", (c: Buffer) => void (out += c.toString()));
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`edge exited (${code}) before it was ready:\n${out}`));
    });
  });
}

async function stopEdge(proc: ChildProcess) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  try {
    process.kill(-proc.pid!, "SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------ one check
async function runCheck(check: Check, edgeUrl: string, origin: ConformanceOrigin): Promise<Result> {
  const token = randomBytes(12).toString("hex");
  origin.register(token, check);
  const observed: Observed[] = [];
  const result = (outcome: Outcome, message?: string): Result => ({
    check,
    outcome,
    message,
    observed,
    originSaw: origin.seen(token).map((s) => {
      const extra = ["if-none-match", "if-modified-since", "range", "cache-control", "authorization"]
        .filter((n) => s.headers[n] !== undefined)
        .map((n) => `${n}: ${s.headers[n]}`);
      return `#${s.clientNum} ${s.method}${extra.length ? ` {${extra.join("; ")}}` : ""}`;
    }),
  });
  try {
    for (let i = 0; i < check.steps.length; i++) {
      const step = check.steps[i]!;
      const num = i + 1;
      let url = `${edgeUrl}/t/${token}`;
      if (step.file) url += `/${step.file}`;
      if (step.query) url += `?${step.query}`;
      const headers = new Headers();
      // What the suite's command-line client sends on every request (it sets these to keep fetch's own cache out).
      headers.append("Pragma", "foo");
      headers.append("Cache-Control", "nothing-to-see-here");
      for (const [n, v] of step.reqHeaders ?? []) headers.append(n, v);
      headers.append("Test-ID", check.id);
      headers.append("Req-Num", String(num));
      if (args["new-connections"]) headers.append("Connection", "close");
      const method = step.method ?? "GET";
      const res = await fetch(url, {
        method,
        headers,
        body: step.reqBody,
        redirect: "manual",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const body = await res.text();
      const obs: Observed = { step: num, method, url, status: res.status, headers: res.headers, body };
      observed.push(obs);
      checkResponse(check, token, step, num, obs);
      if (step.pause) await sleep(PAUSE_MS);
    }
    checkOrigin(check, origin.seen(token), observed);
    return result("pass");
  } catch (err) {
    if (err instanceof Failure) return result(err.setup ? "setup" : "fail", err.message);
    return result("error", (err as Error).message);
  }
}

function checkResponse(check: Check, token: string, step: Step, num: number, obs: Observed) {
  const h = obs.headers;
  const serverNum = Number.parseInt(h.get("server-request-count") ?? "", 10);
  const seenNums = (h.get("request-numbers") ?? "").split(" ").filter(Boolean);
  if (seenNums.length !== new Set(seenNums).size) ensure(true, false, `request ${num}: the origin saw a retry (${seenNums.join(" ")})`);

  if (step.expect === "cached") {
    if (!(obs.status === 304 && Number.isNaN(serverNum)))
      ensure(isSetup(step, "type"), serverNum < num, `response ${num} does not come from the cache (origin request #${serverNum})`);
  } else if (step.expect === "not_cached") {
    ensure(isSetup(step, "type"), serverNum === num, `response ${num} comes from the cache (origin request #${serverNum})`);
  }

  if (step.expectStatus !== undefined) {
    if (step.expectStatus !== null)
      ensure(isSetup(step, "status"), obs.status === step.expectStatus, `response ${num} status is ${obs.status}, not ${step.expectStatus}`);
  } else if (step.status !== undefined) {
    ensure(true, obs.status === step.status, `response ${num} status is ${obs.status}, not ${step.status}`);
  } else if (obs.status === 999) {
    ensure(isSetup(step, "type"), false, `request ${num} should have been conditional, but it was not`);
  } else {
    ensure(true, obs.status === 200, `response ${num} status is ${obs.status}, not 200`);
  }

  const serverNow = Number(h.get("server-now"));
  for (const spec of step.expectHeaders ?? []) checkExpectedHeader(spec, h, serverNow, isSetup(step, "headers"), num);
  for (const name of step.expectMissing ?? [])
    ensure(isSetup(step, "headers"), !h.has(name), `response ${num} includes unexpected ${name}: "${h.get(name)}"`);

  if (step.checkBody === false) return;
  if (step.expectText !== undefined) {
    if (step.expectText !== null)
      ensure(isSetup(step, "text"), obs.body === step.expectText, `response ${num} body is "${clip(obs.body)}", not "${step.expectText}"`);
  } else if (step.resBody !== undefined) {
    ensure(true, obs.body === step.resBody, `response ${num} body is "${clip(obs.body)}", not "${step.resBody}"`);
  } else if (obs.status !== 204 && obs.status !== 304 && obs.method !== "HEAD") {
    ensure(true, obs.body === token, `response ${num} body is "${clip(obs.body)}", not the check's token`);
  }
  void check;
}

function checkExpectedHeader(spec: ExpectedHeader, h: Headers, serverNow: number, setup: boolean, num: number) {
  if (typeof spec === "string") return ensure(setup, h.has(spec), `response ${num}: ${spec} header not present`);
  if (spec.length === 3) {
    ensure(setup, h.has(spec[0]), `response ${num}: ${spec[0]} header not present`);
    const v = h.get(spec[0]);
    return ensure(setup, Number.parseInt(v ?? "", 10) > spec[2], `response ${num}: ${spec[0]} is ${v}, should be bigger than ${spec[2]}`);
  }
  const [name, value] = spec;
  const dateField = ["date", "expires", "last-modified"].includes(name.toLowerCase());
  const expected = typeof value === "number" && dateField ? httpDate(serverNow, value) : String(value);
  ensure(setup, h.get(name) === expected, `response ${num}: ${name} is "${h.get(name)}", not "${expected}"`);
}

/** What the origin saw, against what each step expected of it (the suite's server-side comparison). */
function checkOrigin(check: Check, seen: ReturnType<ConformanceOrigin["seen"]>, observed: Observed[]) {
  let idx = 0;
  for (let i = 0; i < check.steps.length; i++) {
    const step = check.steps[i]!;
    const num = i + 1;
    const got = seen[idx];
    const typeSetup = isSetup(step, "type");
    const validating: string[] = [];
    if (step.expect === "cached") continue;
    if (step.expect === "not_cached")
      ensure(typeSetup, got?.clientNum === num, `response ${num} comes from the cache (origin saw #${got?.clientNum} at that point)`);
    if (step.expect === "etag_validated") validating.push("if-none-match");
    if (step.expect === "lm_validated") validating.push("if-modified-since");
    idx++;
    for (const v of validating) {
      ensure(typeSetup, got !== undefined, `request ${num} was not sent to the origin`);
      ensure(typeSetup, got!.headers[v] !== undefined, `request ${num} to the origin has no ${v}`);
    }
    const reqSetup = isSetup(step, "reqHeaders");
    for (const spec of step.expectReqHeaders ?? []) {
      if (typeof spec === "string") ensure(reqSetup, got?.headers[spec.toLowerCase()] !== undefined, `request ${num} to the origin lacks ${spec}`);
      else {
        const v = got?.headers[spec[0].toLowerCase()];
        ensure(reqSetup, v === spec[1], `request ${num} to the origin has ${spec[0]}: "${v}", not "${spec[1]}"`);
      }
    }
    if (got) {
      const response = observed[i];
      for (const [name, value] of got.passThrough) {
        if (name.toLowerCase() === "date" || !response) continue;
        const received = response.headers.get(name);
        ensure(true, received === value, `response ${num}: ${name} is "${received}", the origin sent "${value}"`);
      }
    }
  }
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);

// ------------------------------------------------------------------ results
function finalOutcomes(results: Result[]): Map<string, Outcome> {
  const byId = new Map(results.map((r) => [r.check.id, r]));
  const memo = new Map<string, Outcome>();
  const outcome = (id: string): Outcome => {
    if (memo.has(id)) return memo.get(id)!;
    const r = byId.get(id);
    if (!r) return "error";
    let o = r.outcome;
    for (const dep of r.check.deps ?? []) if (outcome(dep) !== "pass") o = "dependency";
    memo.set(id, o);
    return o;
  };
  for (const r of results) outcome(r.check.id);
  return memo;
}

function describeStep(o: Observed): string {
  const h = o.headers;
  const bits = [`#${o.step} ${o.method === "GET" ? "" : o.method + " "}${o.status}`];
  bits.push(`X-Cache-Status=${h.get("x-cache-status") ?? "-"}`);
  const cs = h.get("cache-status");
  if (cs) bits.push(`Cache-Status="${cs}"`);
  bits.push(`origin#=${h.get("server-request-count") ?? "-"}`);
  for (const n of ["age", "cache-control", "expires", "etag", "vary", "content-length", "content-range", "warning"])
    if (h.has(n)) bits.push(`${n}=${JSON.stringify(h.get(n))}`);
  return bits.join(" ");
}

function stepsSummary(check: Check): string {
  return check.steps
    .map((s, i) => {
      const parts = [`#${i + 1}`];
      if (s.method) parts.push(s.method);
      if (s.reqHeaders?.length) parts.push(`req{${s.reqHeaders.map(([n, v]) => `${n}: ${v}`).join("; ")}}`);
      if (s.status) parts.push(`origin ${s.status}`);
      if (s.resHeaders?.length) parts.push(`res{${s.resHeaders.map(([n, v]) => `${n}: ${typeof v === "number" ? `now${v >= 0 ? "+" : ""}${v}s` : v}`).join("; ")}}`);
      if (s.expect) parts.push(`expect ${s.expect}`);
      if (s.expectStatus) parts.push(`expect status ${s.expectStatus}`);
      if (s.pause) parts.push("(wait 3 s)");
      return parts.join(" ");
    })
    .join(" → ");
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// ------------------------------------------------------------------ main
const setCookie = args["set-cookie"]!;
if (!["bypass", "strip", "store"].includes(setCookie)) throw new Error("--set-cookie must be bypass, strip or store");
const only = args.only ? new RegExp(args.only) : undefined;
const selected = CHECKS.filter((c) => !only || only.test(c.id) || only.test(c.group));

const origin = new ConformanceOrigin();
const originUrl = await origin.start();
const dir = mkdtempSync(join(tmpdir(), "parrot-conformance-"));
const configPath = join(dir, "cdn.toml");
writeFileSync(
  configPath,
  `[edge]\nname = "conformance"\norigin = "${originUrl}"\n${setCookie === "bypass" ? "" : `set_cookie = "${setCookie}"\n`}`,
);
const started = Date.now();
let edge: Edge | undefined;
try {
  edge = await startEdge(originUrl, configPath);
  console.log(`edge ${edge.url} -> origin ${originUrl} (${args.runtime}${args.runtime === "workerd" ? `, ${args.processes} processes` : ""}); ${selected.length} checks, set_cookie=${setCookie}`);
  const results = await pool(selected, Number(args.concurrency), (c) => runCheck(c, edge!.url, origin));
  const outcomes = finalOutcomes(results);
  report(results, outcomes);
  if (args.json) writeFileSync(args.json, JSON.stringify(Object.fromEntries(results.map((r) => [r.check.id, { kind: r.check.kind, outcome: outcomes.get(r.check.id) }]))));
} finally {
  if (edge) await stopEdge(edge.proc);
  await origin.stop();
  rmSync(dir, { recursive: true, force: true });
}

function report(results: Result[], outcomes: Map<string, Outcome>) {
  const groups = [...new Set(results.map((r) => r.check.group))];
  type Tally = Record<Kind, { pass: number; total: number }>;
  const blank = (): Tally => ({ required: { pass: 0, total: 0 }, optional: { pass: 0, total: 0 }, check: { pass: 0, total: 0 } });
  const suite = blank();
  const extra = blank();
  const rows: string[][] = [["group", "required", "optional", "check (yes)"]];
  for (const g of groups) {
    const t = blank();
    for (const r of results.filter((x) => x.check.group === g)) {
      const passed = outcomes.get(r.check.id) === "pass";
      for (const tally of [t, r.check.extra ? extra : suite]) {
        tally[r.check.kind].total++;
        if (passed) tally[r.check.kind].pass++;
      }
    }
    const extraMark = results.find((x) => x.check.group === g)?.check.extra ? " *" : "";
    rows.push([g + extraMark, ...(["required", "optional", "check"] as Kind[]).map((k) => (t[k].total ? `${t[k].pass}/${t[k].total}` : "-"))]);
  }
  const line = (label: string, t: Tally) => [label, ...(["required", "optional", "check"] as Kind[]).map((k) => `${t[k].pass}/${t[k].total}`)];
  rows.push(line("SUITE TOTAL", suite));
  if (extra.required.total + extra.optional.total + extra.check.total) rows.push(line("extras (*)", extra));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n");
  console.log(`\n${table}\n`);
  console.log(`(* = outside the suite's default list.)  ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const bad = results.filter((r) => outcomes.get(r.check.id) !== "pass");
  const md: string[] = [];
  md.push(`# HTTP caching conformance: parrot-cdn edge`);
  md.push("");
  md.push(`Generated by \`npx node scripts/conformance/run.ts${setCookie !== "bypass" ? ` --set-cookie ${setCookie}` : ""}${only ? ` --only '${args.only}'` : ""}\` on ${new Date().toISOString()}.`);
  md.push(`Checks are modelled on the HTTP caching test suite (cache-tests.fyi); ids and kinds follow it. Edge config: defaults, set_cookie = "${setCookie}".`);
  md.push("");
  md.push("```");
  md.push(table);
  md.push("```");
  md.push("");
  md.push("Outcomes: `fail` = an assertion failed; `setup` = the check could not get to its assertion (the suite's \"setup failure\", not a pass); `dependency` = a check it depends on did not pass; `error` = transport error.");
  md.push("");
  for (const kind of ["required", "optional", "check"] as Kind[]) {
    const list = bad.filter((r) => r.check.kind === kind);
    md.push(`## ${kind === "check" ? "Informational checks answered \"no\"" : `Failing ${kind} checks`} (${list.length})`);
    md.push("");
    for (const r of list) {
      const o = outcomes.get(r.check.id)!;
      md.push(`### ${r.check.id} (${r.check.group}${r.check.extra ? ", extra" : ""}) — ${o}`);
      md.push(`- expected: ${r.check.desc}`);
      md.push(`- steps: ${stepsSummary(r.check)}`);
      if (o === "dependency") md.push(`- depends on: ${(r.check.deps ?? []).map((d) => `${d} (${outcomes.get(d)})`).join(", ")}; its own run: ${r.outcome}${r.message ? ` — ${r.message}` : ""}`);
      else md.push(`- failed: ${r.message}`);
      for (const ob of r.observed) md.push(`- edge: ${describeStep(ob)}`);
      md.push(`- origin saw: ${r.originSaw.length ? r.originSaw.join(" | ") : "nothing"}`);
      md.push("");
    }
  }
  writeFileSync(args.results!, md.join("\n"));
  console.log(`wrote ${args.results}`);
  if (args.verbose) for (const r of bad) console.log(`${outcomes.get(r.check.id)} ${r.check.kind} ${r.check.id}: ${r.message ?? ""}`);
}
