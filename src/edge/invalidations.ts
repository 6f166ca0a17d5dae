/**
 * Invalidations by clients' unsafe requests (RFC 9111 §4.4) across the box: the stored entries go at once (the
 * store, and this process's memory tier), and the box's other processes drop their memory copies when they next read
 * the store's ring (within a second, see PeriodicRead). Nothing goes into the shared purge log, so clients cannot
 * grow shared state.
 *
 * The store process can be away (restarting after a crash) when an invalidation happens: what it could not take is
 * kept here and sent again with every read until it takes it, so the disk and the other processes never keep the old
 * response once the store is back. Bounded: past MAX_UNSENT keys the oldest are given up (and logged).
 */
import type { PeerInvalidations } from "../contracts/store.ts";
import type { EntryStore } from "./store.ts";

const MAX_UNSENT = 10_000;

export class ClientInvalidations {
  private readonly store: EntryStore;
  private readonly peers: PeerInvalidations | undefined;
  /** Keys whose delete or announcement the store did not take yet, oldest first. */
  private readonly unsent = new Set<string>();

  constructor(store: EntryStore, peers: PeerInvalidations | undefined) {
    this.store = store;
    this.peers = peers;
  }

  /** Deletes the keys' entries and tells the other processes; what fails is kept and sent again by `read`. */
  async invalidate(keys: string[]): Promise<void> {
    const deleted = await Promise.all(keys.map((k) => this.store.delete(k).then(() => true, () => false)));
    const told = this.peers ? await this.peers.publish(keys).then(() => true, () => false) : true;
    keys.forEach((key, i) => {
      if (deleted[i] && told) this.unsent.delete(key);
      else this.keep(key);
    });
  }

  /** Sends again what the store did not take, then applies the other processes' invalidations. Never throws. */
  async read(): Promise<void> {
    const [oldest, ...rest] = this.unsent;
    if (oldest !== undefined) {
      await this.invalidate([oldest]); // the store still away: not the other thousands again this second
      if (!this.unsent.has(oldest) && rest.length) await this.invalidate(rest);
    }
    await this.peers?.poll().catch(() => undefined);
  }

  private keep(key: string) {
    this.unsent.delete(key);
    this.unsent.add(key);
    if (this.unsent.size <= MAX_UNSENT) return;
    const oldest = this.unsent.values().next().value!;
    this.unsent.delete(oldest);
    console.error(`edge: the store has been unreachable for ${MAX_UNSENT} client invalidations; ${oldest} given up`);
  }
}
