/**
 * `npm run fleet -- keys --dir DIR --box NAME… [--dns NAME…]`: an nkey per box, per DNS node and one for the
 * operator (Node). Seeds go to `DIR/<name>.nk` (mode 0600: the box's `[control] nkey`), the public halves and roles
 * to `DIR/users.json`, which `npm run nats-config -- --keys DIR` turns into the servers' authorization. A name that
 * already has a key keeps it (the file is the key); remove the files to rotate.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createUser, fromSeed } from "@nats-io/nkeys";
import { parseUsers, type CredentialRole, type NkeyUser } from "./credentials.ts";

export function keysCommand(dir: string, wanted: { name: string; role: CredentialRole }[], out: (line: string) => void): NkeyUser[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const usersPath = join(dir, "users.json");
  const users = existsSync(usersPath) ? parseUsers(readFileSync(usersPath, "utf8"), usersPath) : [];
  for (const { name, role } of [...wanted, { name: "operator", role: "operator" as const }]) {
    const seedPath = join(dir, `${name}.nk`);
    const known = users.find((u) => u.name === name);
    if (known && known.role !== role) throw new Error(`${name}: already has a key as ${known.role}, not ${role}`);
    let nkey: string;
    if (existsSync(seedPath)) nkey = fromSeed(new TextEncoder().encode(readFileSync(seedPath, "utf8").trim())).getPublicKey();
    else {
      const kp = createUser();
      writeFileSync(seedPath, new TextDecoder().decode(kp.getSeed()) + "\n", { mode: 0o600 });
      nkey = kp.getPublicKey();
    }
    if (known) known.nkey = nkey;
    else users.push({ name, role, nkey });
    out(`${role.padEnd(8)} ${name}: ${seedPath} (${nkey})`);
  }
  const aside = `${usersPath}.${process.pid}.tmp`;
  writeFileSync(aside, JSON.stringify(users, null, 2) + "\n");
  renameSync(aside, usersPath);
  out(`${usersPath}: ${users.length} users; give it to every server: npm run nats-config -- --keys ${dir} …`);
  return users;
}
