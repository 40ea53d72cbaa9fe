// Urgent messages on the screens: the badge, who acknowledged (what the
// server says, live) with the recipients' "Acknowledge", the thread's
// urgent messages beside the conversation, and the alerts above every
// screen when the server re-alerts one nobody acknowledged in time.
// Acknowledging is explicit: reading an urgent message is not.

import { Fragment } from 'preact';
import { useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { ShortTime, subjectOf } from './bits';
import type { MessageView, Messenger, UrgentAlertView, UrgentView } from './model';
import { threadHref } from './route';

/** The mark of an urgent message (in words: colour only repeats them). */
export function UrgentBadge() {
  return <span class="urgent-badge">URGENT</span>;
}

/** Who acknowledged an urgent message, or where it stands while nobody has. */
export function AckText({ urgent, myId }: { urgent: UrgentView; myId: string }) {
  const escalated = urgent.stage === 'escalated' || urgent.escalatedToName !== null;
  const backup = urgent.escalatedToName === null ? 'a backup' : urgent.escalatedToName;
  if (urgent.acks.length > 0) {
    return (
      <>
        Acknowledged by{' '}
        {urgent.acks.map((ack, index) => (
          <Fragment key={ack.userId}>
            {index > 0 && ', '}
            <span class="person-name">{ack.userId === myId ? 'you' : ack.displayName}</span> at <ShortTime ms={ack.atMs} />
          </Fragment>
        ))}
        {escalated && ` (after it was escalated to ${backup})`}
      </>
    );
  }
  if (escalated) {
    return <>Not acknowledged yet: escalated to {backup}</>;
  }
  if (urgent.stage === 'realerted') {
    return <>Not acknowledged yet: its recipients were alerted again</>;
  }
  return <>Not acknowledged yet</>;
}

/** An acknowledge button; its failure is said beside it. */
function AcknowledgeButton({
  messenger,
  threadId,
  seq,
  describedBy,
}: {
  messenger: Messenger;
  threadId: string;
  seq: number;
  describedBy: string | undefined;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const acknowledge = async () => {
    setBusy(true);
    setError(null);
    try {
      await messenger.acknowledge(threadId, seq);
    } catch (caught) {
      setError(`Not acknowledged: ${api.messageOf(caught)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="small" aria-describedby={describedBy} disabled={busy} aria-busy={busy} onClick={() => void acknowledge()}>
        Acknowledge
      </button>
      <ErrorText error={error} />
    </>
  );
}

/** Under an urgent message: who acknowledged it, and the recipient's button while they have not. */
export function UrgentStatusLine({
  messenger,
  threadId,
  message,
  describedBy,
}: {
  messenger: Messenger;
  threadId: string;
  message: MessageView;
  describedBy: string | undefined;
}) {
  const urgent = message.urgent;
  if (urgent === null) {
    return null;
  }
  return (
    <div class="urgent-status">
      <p>
        <AckText urgent={urgent} myId={messenger.me.userId} />
      </p>
      {urgent.canAcknowledge && <AcknowledgeButton messenger={messenger} threadId={threadId} seq={urgent.seq} describedBy={describedBy} />}
    </div>
  );
}

/** Beside the conversation: each urgent message of the thread (a forward counts as its original), and who acknowledged it. */
export function UrgentPanel({ messenger, messages }: { messenger: Messenger; messages: MessageView[] }) {
  const urgent = new Map<number, MessageView>();
  for (const message of messages) {
    if (message.urgent !== null && (message.kind === 'text' || message.kind === 'forward') && !urgent.has(message.urgent.seq)) {
      urgent.set(message.urgent.seq, message);
    }
  }
  if (urgent.size === 0) {
    return null;
  }
  return (
    <section aria-labelledby="urgent-heading" class="urgent-panel">
      <h2 id="urgent-heading">Urgent messages</h2>
      <ul class="urgent-list">
        {[...urgent.entries()].reverse().map(([seq, message]) => (
          <li key={seq}>
            <p class="message-meta">
              <span class="person-name">{message.forward?.senderName ?? message.senderName}</span>{' '}
              <ShortTime ms={message.forward?.sentAtMs ?? message.atMs} />
            </p>
            {message.text !== '' && <p class="urgent-preview">{message.text.split('\n')[0]}</p>}
            <p class="urgent-acks">{message.urgent !== null && <AckText urgent={message.urgent} myId={messenger.me.userId} />}</p>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Above every screen: the urgent messages re-alerted that the user has not acknowledged. */
export function UrgentAlerts({ messenger }: { messenger: Messenger }) {
  const alerts = messenger.alerts();
  if (alerts.length === 0) {
    return null;
  }
  return (
    <div class="urgent-alerts">
      {alerts.map((alert) => (
        <UrgentAlert key={`${alert.threadId}/${alert.seq}`} messenger={messenger} alert={alert} />
      ))}
    </div>
  );
}

function UrgentAlert({ messenger, alert }: { messenger: Messenger; alert: UrgentAlertView }) {
  const id = `urgent-alert-${alert.threadId}-${alert.seq}`;
  return (
    <div role="alert" class="urgent-alert">
      <p id={id}>
        <UrgentBadge /> Not acknowledged yet: <span class="person-name">{alert.senderName}</span>’s urgent message of{' '}
        <ShortTime ms={alert.atMs} /> in “<bdi>{subjectOf(alert.subject)}</bdi>” is waiting for you.
      </p>
      <div class="buttons">
        <a href={threadHref(alert.threadId)} aria-describedby={id}>
          Open the thread
        </a>
        <AcknowledgeButton messenger={messenger} threadId={alert.threadId} seq={alert.seq} describedBy={id} />
      </div>
    </div>
  );
}
