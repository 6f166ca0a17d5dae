/**
 * nginx serving a directory as a static origin (the way most Debian mirrors are served): strong ETags (mtime and
 * size), Last-Modified, Range, If-Match / If-Range. Its access log says what the origin was asked for.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { startProcess, stopProcess } from "../../src/node/process.ts";
import { freePort } from "./ports.ts";

export interface NginxOrigin {
  url: string;
  /** Every request so far: [method, path, status, body bytes, Range header, User-Agent]. */
  requests(): [string, string, number, number, string, string][];
  stop(): Promise<void>;
}


/** Starts nginx on a free loopback port serving `root` at `/`. */
export async function startNginxOrigin(root: string, dir: string): Promise<NginxOrigin> {
  mkdirSync(join(dir, "logs"), { recursive: true });
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const port = await freePort();
  const log = join(dir, "logs/access.log");
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  types { application/vnd.debian.binary-package deb; }
  default_type application/octet-stream;
  log_format origin '$request_method $uri $status $body_bytes_sent "$http_range" "$http_user_agent"';
  access_log ${log} origin;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const user = process.getuid?.() === 0 ? ["-g", "user root;"] : [];
  const proc: ChildProcess = startProcess({ command: "nginx", args: ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "logs/error.log"), ...user], log: () => {} });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/`).then((r) => (r.body?.cancel(), true), () => false);
    if (ok) break;
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, "logs/error.log"), "utf8")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    requests: () =>
      (existsSync(log) ? readFileSync(log, "utf8") : "")
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const m = /^(\S+) (\S+) (\d+) (\d+) "(.*?)" "(.*)"$/.exec(line)!;
          return [m[1]!, m[2]!, Number(m[3]), Number(m[4]), m[5] === "-" ? "" : m[5]!, m[6] === "-" ? "" : m[6]!];
        }),
    stop: () => stopProcess(proc),
  };
}
