// Verifying the whole audit log in this browser, as `curbside admin audit
// verify` does with a pinned key (client-cli/src/commands/audit.rs):
//
// 1. the pinned key may be one the log was handed over to (a browser
//    enrolled after a key rotation pins the server's current key), so the
//    log's hand-overs (`GET /v1/audit/entries?action=audit.key.rotate&
//    outcome=allowed`) are walked back from it to the key the log began
//    with (`firstKey`; every hand-over listed must verify, none is
//    skipped);
// 2. the whole export is verified from that first key, following the
//    hand-overs forward, and must reach the pinned key;
// 3. the log must extend the tree head this browser verified last (kept in
//    its IndexedDB record), and must not be empty (this browser's own
//    enrollment is in it); a verified log's head is kept for next time.

import * as api from './api';
import { toB64std } from './audit/bytes';
import { firstKey, HANDOVER_ACTION, HandoverError } from './audit/handover';
import { linesOf, verifyExport, type VerifyProgress } from './audit/verify';
import { auditKeyString, auditOrigin, rememberVerifiedHead, type StoredDevice, type StoredHead } from './device';
import type { AuditEntry, AuditPage } from './types';

/** The most entries one search page holds (`audit_review::MAX_PAGE`). */
const SEARCH_PAGE = 1000;
/** Pages of hand-overs read at most (a log has a handful). */
const MAX_PAGES = 100;

export type LogCheck =
  | {
      kind: 'ok';
      entries: number;
      lastSeq: number | null;
      treeSize: number | null;
      /** The key in force after the last entry, as a verifier key. */
      keyId: string;
      /** The pinned key, as a verifier key. */
      pinnedKeyId: string;
      /** How many hand-overs lead from the log's first key to the pinned one. */
      handoversBack: number;
      /** The head this browser had kept and the log extends, if any. */
      extended: StoredHead | null;
      /** The head kept now; null if it could not be stored (with why). */
      kept: StoredHead | null;
      keepError: string | null;
    }
  | { kind: 'broken'; seq: number | null; message: string; entries: number };

/** The log's allowed key hand-over entries, oldest first. */
async function handoverEntries(signal: AbortSignal): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  let after: number | null = null;
  for (let pages = 0; ; pages++) {
    if (pages >= MAX_PAGES) {
      throw new Error('The server lists more key hand-overs than any log has; the log cannot be verified.');
    }
    const response = await api.call('GET', '/v1/audit/entries', {
      query: { action: HANDOVER_ACTION, outcome: 'allowed', limit: SEARCH_PAGE, after },
      signal,
    });
    const page = (await response.json()) as AuditPage;
    found.push(...page.entries.map(({ entry }) => entry));
    if (page.next_after === null || page.entries.length === 0) {
      break;
    }
    after = page.next_after;
  }
  // Exactly those the verifier follows (the server's filter, checked again).
  return found.filter((entry) => entry.action === HANDOVER_ACTION && entry.outcome === 'allowed');
}

/** The verifier's sentence names the sequence too; the page says it once. */
function withoutSeq(message: string): string {
  return message.replace(/^the audit log breaks at sequence \d+: /, '');
}

/**
 * Verifies the whole log against `stored`'s pinned key; resolves to the
 * verdict (a broken log is a verdict, not an error). Rejects only when the
 * log could not be read at all (network, no key pinned).
 */
export async function checkLog(
  stored: StoredDevice,
  signal: AbortSignal,
  onProgress: (progress: VerifyProgress) => void,
  onTotal: (entries: number) => void,
): Promise<LogCheck> {
  const pinned = stored.auditKey;
  if (pinned === null || pinned === undefined) {
    throw new Error('No audit key is pinned in this browser, so the log cannot be verified here: pin it first.');
  }
  const origin = auditOrigin(stored.serverId);
  const pinnedKeyId = await auditKeyString(stored.serverId, pinned);

  let first: Awaited<ReturnType<typeof firstKey>>;
  try {
    first = await firstKey(pinned, await handoverEntries(signal));
  } catch (error) {
    if (error instanceof HandoverError) {
      return { kind: 'broken', seq: Number(error.seq), message: error.message, entries: 0 };
    }
    throw error;
  }

  const response = await api.call('GET', '/v1/audit/export', { query: { format: 'jsonl' }, signal });
  if (response.body === null) {
    throw new Error('The export came with no body.');
  }
  // The header line says where the export ends: the progress bar's maximum.
  async function* counted(lines: AsyncIterable<string>): AsyncIterable<string> {
    let firstLine = true;
    for await (const line of lines) {
      if (firstLine) {
        firstLine = false;
        try {
          const header = JSON.parse(line) as { head_seq?: unknown };
          if (typeof header.head_seq === 'number') {
            onTotal(header.head_seq);
          }
        } catch {
          // The verifier reports a bad header.
        }
      }
      yield line;
    }
  }

  const kept = stored.verifiedHead ?? null;
  const verified = await verifyExport(counted(linesOf(response.body)), first.key, onProgress, {
    origin,
    mustReach: pinned,
    requireEntries: true,
    ...(kept !== null ? { checkRootAt: { size: kept.size, root: kept.root, publicKey: kept.publicKey } } : {}),
  });
  if (!verified.ok) {
    const message = verified.brokenSeq === null ? verified.message : withoutSeq(verified.message);
    return { kind: 'broken', seq: verified.brokenSeq, message, entries: verified.entries };
  }
  const head: StoredHead = {
    size: verified.head.size,
    root: verified.head.root,
    publicKey: verified.head.publicKey,
    keyId: verified.keyId,
    atMs: Date.now(),
  };
  let keepError: string | null = null;
  if (!signal.aborted) {
    try {
      await rememberVerifiedHead(stored.deviceId, head);
    } catch (error) {
      keepError = api.messageOf(error);
    }
  }
  return {
    kind: 'ok',
    entries: verified.entries,
    lastSeq: verified.lastSeq,
    treeSize: verified.treeSize,
    keyId: verified.keyId,
    pinnedKeyId,
    handoversBack: first.steps.length,
    extended: kept,
    kept: keepError === null ? head : null,
    keepError,
  };
}

/** A tree head's root as its tree checkpoint writes it (standard base64). */
export function rootText(root: Uint8Array): string {
  return toB64std(root);
}
