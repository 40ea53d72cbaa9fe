// Disappearing messages: the lifespans a member can choose for a thread,
// and how a lifespan reads. The server keeps the thread's lifespan and
// erases what outlives it; every member's device deletes the same
// messages from its own store (engine.ts).

/** The choices offered, in seconds (null: messages stay). */
export const LIFESPAN_CHOICES: readonly (number | null)[] = [null, 30, 5 * 60, 3600, 86_400, 7 * 86_400];

/** The longest lifespan the server takes: 10 years. */
export const MAX_LIFESPAN_S = 315_360_000;

const UNITS: readonly [seconds: number, one: string, many: string][] = [
  [7 * 86_400, 'week', 'weeks'],
  [86_400, 'day', 'days'],
  [3600, 'hour', 'hours'],
  [60, 'minute', 'minutes'],
  [1, 'second', 'seconds'],
];

/** A lifespan in the largest unit that divides it exactly: "30 seconds", "1 hour", "2 weeks". */
export function lifespanText(seconds: number): string {
  for (const [unit, one, many] of UNITS) {
    if (seconds % unit === 0) {
      const count = seconds / unit;
      return `${count} ${count === 1 ? one : many}`;
    }
  }
  return `${seconds} seconds`;
}

/** The log's notice of a change, with who made it. */
export function lifespanNotice(byName: string, seconds: number | null): string {
  return seconds === null
    ? `${byName} turned off disappearing messages`
    : `${byName} set messages to disappear after ${lifespanText(seconds)}`;
}
