// How times and numbers are shown.

const number = new Intl.NumberFormat();
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
const dayAndClock = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function count(value: number): string {
  return number.format(value);
}

/** A time in the browser's locale and zone. */
export function localTime(ms: number): string {
  return dateTime.format(new Date(ms));
}

/** A time briefly, for lists and messages: the clock alone if it is today. */
export function shortTime(ms: number, now: number = Date.now()): string {
  const when = new Date(ms);
  return when.toDateString() === new Date(now).toDateString() ? clock.format(when) : dayAndClock.format(when);
}

/** A time as ISO 8601 in UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** How long ago, e.g. "3 min ago"; "in 2 h" for a future time. */
export function ago(ms: number, now: number = Date.now()): string {
  const seconds = Math.round((now - ms) / 1000);
  const future = seconds < 0;
  const span = Math.abs(seconds);
  let text: string;
  if (span < 45) {
    return future ? 'in a few seconds' : 'just now';
  } else if (span < 90 * 60) {
    text = `${Math.max(1, Math.round(span / 60))} min`;
  } else if (span < 36 * 3600) {
    text = `${Math.round(span / 3600)} h`;
  } else {
    text = `${Math.round(span / 86400)} days`;
  }
  return future ? `in ${text}` : `${text} ago`;
}

/** A `datetime-local` input's value as Unix ms, or undefined when empty. */
export function fromLocalInput(value: string): number | undefined {
  if (value === '') {
    return undefined;
  }
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

/** A role as people read it. */
export function roleName(role: string): string {
  switch (role) {
    case 'admin':
      return 'Administrator';
    case 'auditor':
      return 'Auditor';
    case 'clinician':
      return 'Clinician';
    default:
      return role;
  }
}

export function statusName(status: string): string {
  return status === 'active' ? 'Active' : status === 'deactivated' ? 'Deactivated' : status;
}
