/**
 * The requests one dispatcher sent to a remote pool's hosts, until their
 * answers end: which attempt is current (each has a reply subject of its own),
 * which host took each, and the token its messages about it must carry.
 *
 * @module
 */

import type { Pending } from "../requests/pending.ts";
import type { BodyParts, RemoteAnswer } from "./messages.ts";
import type { OutgoingBody } from "./upload.ts";
import type { RemoteHost } from "./remote_hosts.ts";

/** A worker host, as a dispatcher knows it, with the requests it sent it. */
export type KnownHost = RemoteHost<Sent>;

/** A request sent to the pool's subject, until its answer ends. */
export interface Sent {
  p: Pending<KnownHost>;
  /** The subject its answer comes back on: one per attempt, so that a host that sent it back answers no later one. */
  reply: string;
  /** The host that took it, once it said so, and the token its messages about it carry. */
  host: KnownHost | null;
  token: string | null;
  /** Clock time it was sent. */
  at: number;
  /** Its body, whose parts after the first go to the host that took it, as that host grants credit. */
  body: OutgoingBody;
  /** A whole answer's head and its body so far, while it arrives in parts. */
  answer: { head: RemoteAnswer; parts: BodyParts } | null;
}

/** The requests sent and not yet answered, by request id. */
export class SentRequests {
  readonly #sent = new Map<number, Sent>();
  /** Numbers each attempt, for its reply subject. */
  #attempts = 0;
  readonly #inbox: string;

  /** `inbox`: the prefix of this dispatcher's reply subjects. */
  constructor(inbox: string) {
    this.#inbox = inbox;
  }

  /** How many are out. */
  get size(): number {
    return this.#sent.size;
  }

  /** Every one out. */
  values(): IterableIterator<Sent> {
    return this.#sent.values();
  }

  /** The one for `p`, if out. */
  of(p: Pending<KnownHost>): Sent | undefined {
    return this.#sent.get(p.requestId);
  }

  /** A fresh reply subject for an attempt to send `p`. */
  nextReply(p: Pending<KnownHost>): string {
    return `${this.#inbox}.${p.requestId}.${++this.#attempts}`;
  }

  /** `p` went out with reply subject `reply` at `now`; the rest of its `body` waits for the host that takes it. */
  add(p: Pending<KnownHost>, reply: string, body: OutgoingBody, now: number): void {
    this.#sent.set(p.requestId, { p, reply, host: null, token: null, at: now, body, answer: null });
  }

  /** The request whose current attempt answers on `subject`; an earlier attempt's subject finds none. */
  bySubject(subject: string): Sent | undefined {
    const id = Number(subject.slice(this.#inbox.length + 1, subject.lastIndexOf(".")));
    const sent = this.#sent.get(id);
    return sent?.reply === subject ? sent : undefined;
  }

  /** `host` took `sent`; its messages about it carry `token`. */
  bind(sent: Sent, host: KnownHost, token: string): void {
    sent.host = host;
    sent.token = token;
    sent.p.servedBy = host;
    host.inflight.add(sent);
  }

  /** `sent` is answered, sent back or given up: it leaves the books. */
  done(sent: Sent): void {
    this.#sent.delete(sent.p.requestId);
    sent.host?.inflight.delete(sent);
  }

  /** `lost` leave the books: their hosts are gone. */
  forget(lost: readonly Pending<KnownHost>[]): void {
    for (const p of lost) {
      const sent = this.#sent.get(p.requestId);
      if (sent !== undefined) this.done(sent);
    }
  }

  /** Those no host acknowledged within `ms` of `now`: the host that took each died at once, or a message was lost. */
  unacknowledged(now: number, ms: number): Pending<KnownHost>[] {
    const lost: Pending<KnownHost>[] = [];
    for (const sent of this.#sent.values()) if (sent.host === null && now - sent.at > ms) lost.push(sent.p);
    return lost;
  }
}
