// Disappearing messages: any member sets how long the thread's messages
// are kept, for everyone (the server erases them, and every member's
// device deletes them as this one does). Applied with a button, not on
// choosing, so moving through the list changes nothing by itself.

import { useEffect, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { LIFESPAN_CHOICES, lifespanText } from './lifespan';
import type { Messenger, ThreadView } from './model';

const OFF = 'off';

function valueOf(lifespanS: number | null): string {
  return lifespanS === null ? OFF : String(lifespanS);
}

export function LifespanPanel({ messenger, thread }: { messenger: Messenger; thread: ThreadView }) {
  const current = thread.lifespanS;
  const [choice, setChoice] = useState(valueOf(current));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // A member may change it meanwhile: the list shows what holds now.
  useEffect(() => setChoice(valueOf(current)), [current]);

  // One set by the CLI may be none of the choices: it is listed too.
  const choices = LIFESPAN_CHOICES.includes(current) ? LIFESPAN_CHOICES : [...LIFESPAN_CHOICES, current];

  const apply = async () => {
    setBusy(true);
    setError(null);
    try {
      await messenger.setLifespan(thread.threadId, choice === OFF ? null : Number(choice));
    } catch (caught) {
      setError(`Not changed: ${api.messageOf(caught)}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="lifespan-heading" class="lifespan">
      <h2 id="lifespan-heading">Disappearing messages</h2>
      <p>{current === null ? 'Off: messages are kept.' : `On: messages are deleted ${lifespanText(current)} after they were sent.`}</p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void apply();
        }}
      >
        <label for="lifespan-choice">Messages disappear after</label>
        <select id="lifespan-choice" aria-describedby="lifespan-help" value={choice} onChange={(event) => setChoice(event.currentTarget.value)}>
          {choices.map((seconds) => (
            <option key={valueOf(seconds)} value={valueOf(seconds)}>
              {seconds === null ? 'Off' : lifespanText(seconds)}
            </option>
          ))}
        </select>
        <small id="lifespan-help">
          For everyone in this thread, from the server and from every member’s devices: messages sent from now on; earlier ones keep the lifespan they were sent with.
        </small>
        <ErrorText error={error} />
        <button type="submit" class="secondary" disabled={busy || choice === valueOf(current)} aria-busy={busy}>
          Set
        </button>
      </form>
    </section>
  );
}
