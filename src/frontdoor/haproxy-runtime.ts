/**
 * HAProxy's runtime API over its unix socket (one command per connection): certificates are replaced in the running
 * process (`set ssl cert` + `commit ssl cert`: new handshakes get the new one, open connections are untouched, no
 * reload), OCSP responses are stapled, and counters and stick tables are read for the metrics. The parsers are pure.
 */
import { createConnection } from "node:net";

/** Sends one command (with an optional `<<` payload) and resolves with the whole answer. */
export function runtimeCommand(socketPath: string, command: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let out = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`haproxy runtime API: no answer to "${command.split("\n")[0]}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (out += d));
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.once("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.end(command.endsWith("\n") ? command : `${command}\n`);
  });
}

/**
 * Replaces the certificate (chain + key PEM) loaded from `file`, with its OCSP response to staple when given, in one
 * transaction; throws with HAProxy's words when it refuses. (HAProxy 2.6 matches a stapled response to a
 * certificate only when both arrive together, at load time or in one transaction like this.)
 */
export async function replaceCertificate(socketPath: string, file: string, pem: string, ocspDer?: Uint8Array): Promise<void> {
  const set = await runtimeCommand(socketPath, `set ssl cert ${file} <<\n${pem.trim()}\n\n`);
  if (!/Transaction (created|updated)/.test(set)) throw new Error(`haproxy refused the certificate for ${file}: ${set.trim()}`);
  if (ocspDer) {
    const ocsp = await runtimeCommand(socketPath, `set ssl cert ${file}.ocsp <<\n${Buffer.from(ocspDer).toString("base64")}\n\n`);
    if (!/Transaction (created|updated)/.test(ocsp)) {
      await runtimeCommand(socketPath, `abort ssl cert ${file}`).catch(() => undefined);
      throw new Error(`haproxy refused the OCSP response for ${file}: ${ocsp.trim()}`);
    }
  }
  const commit = await runtimeCommand(socketPath, `commit ssl cert ${file}`);
  if (!/Success!/.test(commit)) {
    await runtimeCommand(socketPath, `abort ssl cert ${file}`).catch(() => undefined);
    throw new Error(`haproxy could not commit the certificate for ${file}: ${commit.trim()}`);
  }
}

/** One row of `show stat`: the CSV's columns by name. */
export type StatRow = Record<string, string>;

/** Parses `show stat` CSV (header line starts with "# "). */
export function parseStat(csv: string): StatRow[] {
  const lines = csv.split("\n").filter((l) => l.trim());
  const header = lines.shift();
  if (!header?.startsWith("# ")) return [];
  const names = header.slice(2).split(",");
  return lines.map((l) => {
    const cells = l.split(",");
    const row: StatRow = {};
    names.forEach((n, i) => {
      if (n) row[n] = cells[i] ?? "";
    });
    return row;
  });
}

/** One stick-table entry: its key and stored data (`gpc0`, `gpt0`, `conn_cur`, `http_req_rate(10000)` …). */
export interface TableEntry {
  key: string;
  expiresMs: number;
  data: Record<string, number>;
}

/** Parses `show table <name>`. */
export function parseTable(text: string): TableEntry[] {
  const entries: TableEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^0x[0-9a-f]+: key=(\S+)(.*)$/.exec(line.trim());
    if (!m) continue;
    const entry: TableEntry = { key: unmapV4(m[1]!), expiresMs: 0, data: {} };
    for (const [, name, value] of m[2]!.matchAll(/\s([a-z_0-9()]+)=(\d+)/g)) {
      if (name === "exp") entry.expiresMs = Number(value);
      else if (name !== "use") entry.data[name!] = Number(value);
    }
    entries.push(entry);
  }
  return entries;
}

/** IPv4 keys are stored IPv4-mapped in the ipv6 tables: show them as IPv4. */
function unmapV4(key: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(key);
  return m ? m[1]! : key;
}
