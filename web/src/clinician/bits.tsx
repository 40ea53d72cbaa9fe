// Small pieces the clinician's screens share.

import { useEffect, useState } from 'preact/hooks';

import { isoTime, localTime, shortTime } from '../format';
import type { ConnectionStatus, LeftInfo, Messenger, ReceiptsView } from './model';

/** The name of the web app wherever a screen names itself. */
export const APP_NAME = 'Curbside';

/** Sets the window's title while a screen is shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} — ${APP_NAME}`;
  }, [title]);
}

/**
 * Re-renders the calling component whenever the messenger's views change
 * (a message arrived, a receipt, the connection): the views are read
 * during render, so a new render is all it takes.
 */
export function useMessengerUpdates(messenger: Messenger): void {
  const [, setVersion] = useState(0);
  useEffect(() => messenger.subscribe(() => setVersion((version) => version + 1)), [messenger]);
}

/** A time, briefly, with the full local time on hover and ISO for machines. */
export function ShortTime({ ms }: { ms: number }) {
  return (
    <time dateTime={isoTime(ms)} title={localTime(ms)}>
      {shortTime(ms)}
    </time>
  );
}

export function subjectOf(subject: string | null): string {
  return subject ?? '(no subject yet)';
}

const STATUS_TEXT: Record<ConnectionStatus, string> = {
  live: 'Live',
  connecting: 'Connecting…',
  offline: 'Offline',
};

/** The live connection's state, as words (colour only repeats them). */
export function ConnectionText({ status }: { status: ConnectionStatus }) {
  return (
    <span role="status" class={`connection connection-${status}`}>
      {STATUS_TEXT[status]}
    </span>
  );
}

/** How this device's membership ended, as a sentence without the time. */
export function leftSentence(left: LeftInfo): string {
  switch (left.reason) {
    case 'removed':
      return `You were removed from this thread by ${left.byName ?? 'a member'}`;
    case 'left':
      return 'You left this thread';
    case 'deactivated':
      return 'Your account was deactivated, which removed you from this thread';
    case 'device_removed':
      return 'This browser was removed from your devices, which removed it from this thread';
    default:
      return left.byName === null ? 'You are no longer in this thread' : `${left.byName} ended your membership`;
  }
}

/**
 * What became of one of the user's own messages: read by whom, else
 * delivered to every other member's devices, else only sent.
 */
export function receiptText(seq: number, receipts: ReceiptsView | null): string {
  const users = receipts?.users ?? [];
  const readers = users.filter((user) => user.readSeq >= seq).map((user) => user.displayName);
  if (readers.length > 0) {
    return `Read by ${readers.join(', ')}`;
  }
  if (users.length > 0 && users.every((user) => user.deliveredSeq >= seq)) {
    return 'Delivered';
  }
  return 'Sent';
}

const SIZE_UNITS = ['KB', 'MB', 'GB'];

/** A file's size for people: "512 bytes", "1.5 KB", "12 MB" (units of 1,024). */
export function sizeText(bytes: number): string {
  if (bytes < 1024) {
    return bytes === 1 ? '1 byte' : `${bytes} bytes`;
  }
  let value = bytes;
  let unit = '';
  for (const next of SIZE_UNITS) {
    value /= 1024;
    unit = next;
    if (value < 1024) {
      break;
    }
  }
  // One decimal below 10 ("1.5 MB"), none above ("12 MB"), never "10.0".
  const shown = value < 9.95 ? value.toFixed(1).replace(/\.0$/, '') : String(Math.round(value));
  return `${shown} ${unit}`;
}

/**
 * Moves focus to the new screen's heading, as a page load would: a screen
 * reader then reads where the user is now.
 */
export function focusHeading(): void {
  const heading = document.querySelector<HTMLElement>('#main h1');
  if (heading !== null) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}
