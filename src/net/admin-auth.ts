/** Admin endpoints' bearer token check: constant time (both sides hashed first, then compared byte by byte). */

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Whether `Authorization: Bearer <token>` carries the configured token. False when none is configured. */
export async function isAuthorized(request: Request, token: string | undefined): Promise<boolean> {
  if (!token) return false;
  const header = request.headers.get("authorization") ?? "";
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? "";
  const [a, b] = await Promise.all([digest(given), digest(token)]);
  let diff = given ? 0 : 1;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** The answer to a request without the right token (and nothing done). */
export function unauthorized(configured: boolean): Response {
  return new Response(configured ? "401 a valid admin token is required\n" : "403 admin endpoints are off: set [admin] token\n", {
    status: configured ? 401 : 403,
    headers: { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="parrot-cdn"' },
  });
}
