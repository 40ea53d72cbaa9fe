// Wall-clock times in a named (IANA) time zone, with nothing but Intl: a
// shift is planned as "08:00 to 20:00 in Europe/Paris" and stored as UTC
// milliseconds, so a local date-time must become the instant it names
// in that zone (which the browser's own zone says nothing about). And
// lengths of time, as shifts and escalation policies show them.

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** The browser's time zone. */
export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** The zone's canonical name, or null if Intl does not know it. */
export function canonicalZone(zone: string): string | null {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

/** Whether two zone names are the same zone ("Asia/Calcutta", "Asia/Kolkata"). */
export function sameZone(a: string, b: string): boolean {
  return a === b || (canonicalZone(a) ?? a) === (canonicalZone(b) ?? b);
}

/** Every zone the browser knows, with `also` among them, sorted. */
export function knownZones(also: readonly string[]): string[] {
  const zones = new Set<string>(Intl.supportedValuesOf('timeZone'));
  for (const zone of also) {
    zones.add(zone);
  }
  return [...zones].sort();
}

const fieldFormats = new Map<string, Intl.DateTimeFormat>();

function fieldFormat(zone: string): Intl.DateTimeFormat {
  let format = fieldFormats.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    fieldFormats.set(zone, format);
  }
  return format;
}

/**
 * What a clock in `zone` reads at the instant `ms`, as the UTC
 * milliseconds of the same reading (whole seconds).
 */
export function wallClockAt(zone: string, ms: number): number {
  const fields: Record<string, number> = {};
  for (const part of fieldFormat(zone).formatToParts(new Date(ms))) {
    if (part.type !== 'literal') {
      fields[part.type] = Number(part.value);
    }
  }
  const field = (name: string) => fields[name] ?? 0;
  const day = Date.UTC(field('year'), field('month') - 1, field('day'));
  return day + ((field('hour') % 24) * 3600 + field('minute') * 60 + field('second')) * 1000;
}

/** How far `zone`'s clocks are ahead of UTC at the instant `ms`. */
export function offsetAt(zone: string, ms: number): number {
  const second = Math.floor(ms / 1000) * 1000;
  return wallClockAt(zone, second) - second;
}

/** A reading of a zone's clocks, as the instant it names there. */
export type Instant =
  | {
      kind: 'ok';
      ms: number;
      /** The clocks went back: the reading came twice; this is the first. */
      repeated: boolean;
    }
  | { kind: 'skipped' };

/**
 * The instant at which `zone`'s clocks read `wall` (a reading as UTC
 * milliseconds). Searches the offsets in force a day either side: the
 * instant is `wall` less one of them, and the one whose own offset is
 * that one. A reading the clocks skipped (they went forward) names no
 * instant; one they passed twice (they went back) names the first.
 */
export function instantOf(zone: string, wall: number): Instant {
  const offsets = new Set([offsetAt(zone, wall - DAY_MS), offsetAt(zone, wall), offsetAt(zone, wall + DAY_MS)]);
  const found = [...offsets]
    .map((offset) => wall - offset)
    .filter((ms) => ms + offsetAt(zone, ms) === wall)
    .sort((a, b) => a - b);
  const first = found[0];
  if (first === undefined) {
    return { kind: 'skipped' };
  }
  return { kind: 'ok', ms: first, repeated: found.length > 1 };
}

const LOCAL_INPUT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?$/;

/** A `datetime-local` input's value as a reading (UTC ms), or null. */
export function readingOf(value: string): number | null {
  const match = LOCAL_INPUT.exec(value);
  if (match === null) {
    return null;
  }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((text) => Number(text ?? '0'));
  if (
    year === undefined ||
    month === undefined ||
    day === undefined ||
    hour === undefined ||
    minute === undefined ||
    second === undefined
  ) {
    return null;
  }
  const reading = Date.UTC(year, month - 1, day, hour, minute, second);
  // 31 February and 25:00 are not readings.
  const back = new Date(reading);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || back.getUTCHours() !== hour) {
    return null;
  }
  return reading;
}

/** A reading (UTC ms) as a `datetime-local` input's value, to the minute. */
export function inputValueOf(reading: number): string {
  return new Date(Math.floor(reading / MINUTE_MS) * MINUTE_MS).toISOString().slice(0, 16);
}

const shownFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * The instant `ms` as `zone`'s clocks show it, briefly: "Tue 4 Mar,
 * 08:00 CET", with the year when it is not that of `nowMs`.
 */
export function zonedText(ms: number, zone: string, nowMs: number): string {
  const withYear = new Date(ms).getUTCFullYear() !== new Date(nowMs).getUTCFullYear();
  const key = `${zone} ${withYear}`;
  let format = shownFormats.get(key);
  if (format === undefined) {
    const options: Intl.DateTimeFormatOptions = {
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      hour: '2-digit',
      minute: '2-digit',
      timeZoneName: 'short',
    };
    if (withYear) {
      options.year = 'numeric';
    }
    try {
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone });
    } catch {
      // A zone this browser does not know: UTC, which says so.
      format = new Intl.DateTimeFormat(undefined, { ...options, timeZone: 'UTC' });
    }
    shownFormats.set(key, format);
  }
  return format.format(new Date(ms));
}

/** A length of time, briefly: "1 min", "1 h 30 min", "2 days 4 h". */
export function durationText(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const parts: string[] = [];
  if (days > 0) {
    parts.push(`${days} day${days === 1 ? '' : 's'}`);
  }
  if (hours > 0) {
    parts.push(`${hours} h`);
  }
  if (minutes > 0) {
    parts.push(`${minutes} min`);
  }
  if (rest > 0 || parts.length === 0) {
    parts.push(`${rest} s`);
  }
  return parts.join(' ');
}
