/**
 * Headless Chromium driven over the DevTools protocol (Node's own WebSocket, no library): load a page and evaluate
 * an expression in it, e.g. the navigation's `nextHopProtocol`. Names resolve where `hostRules` say, and a
 * certificate chain holding a key in `spki` (base64 SHA-256) is trusted, so a test CA needs no system store.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CHROMIUM = "/usr/bin/chromium";

export interface PageOptions {
  /** Chromium's --host-resolver-rules, e.g. "MAP www.example.org 127.0.0.2". */
  hostRules?: string;
  /** SPKI hashes whose certificates are accepted (--ignore-certificate-errors-spki-list). */
  spki?: string[];
  timeoutMs?: number;
  /** host:port origins Chromium speaks HTTP/3 to at once (--origin-to-force-quic-on); QUIC is off otherwise. */
  quicOrigins?: string[];
}

/** Loads `url` and returns the value of `expression` evaluated once the page has loaded. */
export async function evaluateInPage(url: string, expression: string, opts: PageOptions = {}): Promise<unknown> {
  const profile = mkdtempSync(join(tmpdir(), "parrot-chromium-"));
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`, "--remote-debugging-port=0",
  ];
  args.push(...(opts.quicOrigins?.length ? ["--enable-quic", `--origin-to-force-quic-on=${opts.quicOrigins.join(",")}`] : ["--disable-quic"]));
  if (opts.hostRules) args.push(`--host-resolver-rules=${opts.hostRules}`);
  if (opts.spki?.length) args.push(`--ignore-certificate-errors-spki-list=${opts.spki.join(",")}`);
  // Its own process group: the renderers and the zygote go with it (they would keep writing into the profile).
  const browser = spawn(CHROMIUM, [...args, "about:blank"], { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let stderr = "";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  try {
    const wsUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${stderr}`)), timeoutMs);
      browser.stderr!.on("data", (d) => {
        stderr += d;
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      browser.once("exit", (code) => reject(new Error(`chromium exited (${code}):\n${stderr}`)));
    });
    const ws = new WebSocket(wsUrl);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", () => reject(new Error("cannot reach chromium's DevTools socket")));
    });
    let nextId = 0;
    const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
    ws.addEventListener("message", (event: MessageEvent) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      const waiter = msg.id !== undefined ? pending.get(msg.id) : undefined;
      if (!waiter) return;
      pending.delete(msg.id!);
      if (msg.error) waiter.reject(new Error(msg.error.message));
      else waiter.resolve(msg.result ?? {});
    });
    const send = (method: string, params: object = {}, sessionId?: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params, sessionId }));
      });
    const { targetId } = (await send("Target.createTarget", { url })) as { targetId: string };
    const { sessionId } = (await send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    const evaluate = async (expr: string) => {
      const r = (await send("Runtime.evaluate", { expression: expr, returnByValue: true, awaitPromise: true }, sessionId)) as {
        result: { value?: unknown };
        exceptionDetails?: { text: string };
      };
      if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.text}`);
      return r.result.value;
    };
    // Loaded: the target left its initial about:blank and finished the document (an error page counts, and fails below).
    while ((await evaluate("location.href === 'about:blank' ? 'blank' : document.readyState")) !== "complete") {
      if (Date.now() > deadline) throw new Error(`${url} did not load within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const value = await evaluate(expression);
    ws.close();
    return value;
  } finally {
    const exited = browser.exitCode === null && browser.signalCode === null ? new Promise((r) => browser.once("exit", r)) : undefined;
    try {
      process.kill(-browser.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
    await exited;
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}
