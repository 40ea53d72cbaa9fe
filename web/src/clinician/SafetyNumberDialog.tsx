// The safety number of the user and a colleague, to read to each other:
// it is computed from both users' device keys as each side sees them, so
// the same number on both sides means no one slipped a device of their
// own into the thread. The same number as `curbside safety-number`.

import { useEffect, useId, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText, Loading } from '../components/Bits';
import type { MemberView, Messenger } from './model';

interface Props {
  messenger: Messenger;
  member: MemberView;
  onClose: () => void;
}

export function SafetyNumberDialog({ messenger, member, onClose }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const [number, setNumber] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const element = dialog.current;
    if (element !== null && !element.open) {
      element.showModal();
    }
    return () => element?.close();
  }, []);

  useEffect(() => {
    let cancelled = false;
    messenger.safetyNumber(member.userId).then(
      (digits) => !cancelled && setNumber(digits),
      (caught: unknown) => !cancelled && setError(`The safety number could not be computed: ${api.messageOf(caught)}`),
    );
    return () => {
      cancelled = true;
    };
  }, [messenger, member.userId]);

  return (
    <dialog
      ref={dialog}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      <article>
        <h2 id={titleId}>Safety number with {member.displayName}</h2>
        {number === null && error === null && <Loading what="the safety number" />}
        {number !== null && (
          <p class="safety-number" data-testid="safety-number">
            {number}
          </p>
        )}
        <ErrorText error={error} />
        <p>
          Read this number to {member.displayName}, in person or on a call where you know their voice, and ask them to
          compare it with what their device shows: in Curbside, the same button beside your name; on the command
          line, <code>curbside safety-number "{messenger.me.displayName}"</code>.
        </p>
        <p>
          If the numbers are the same, each of you sees the other’s real devices: what you write reaches them and no
          impostor. If they differ, do not send patient information to them, and tell your administrator.
        </p>
        <footer>
          <button type="button" onClick={onClose}>
            Close
          </button>
        </footer>
      </article>
    </dialog>
  );
}
