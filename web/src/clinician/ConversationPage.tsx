// One thread: its messages oldest first (with their files), what became
// of the user's own (sent, delivered, read by whom), which are urgent and
// who acknowledged them, a form to write (urgent or not) and attach files,
// its members, and how long its messages live. Text is
// shown as text, never as HTML: whatever a message holds, it cannot
// become markup in this page.

import { useEffect, useRef, useState } from 'preact/hooks';

import * as api from '../api';
import { ErrorText } from '../components/Bits';
import { Confirm } from '../components/Confirm';
import { MAX_FILE_BYTES } from './attachment';
import { AttachmentList, attachmentLabelId } from './Attachments';
import { leftSentence, receiptText, ShortTime, sizeText, subjectOf } from './bits';
import { lifespanText } from './lifespan';
import { LifespanPanel } from './LifespanPanel';
import { MembersPanel } from './MembersPanel';
import type { MessageView, Messenger, ReceiptsView, ThreadView } from './model';
import { THREADS_HREF } from './route';
import { UrgentBadge, UrgentPanel, UrgentStatusLine } from './Urgent';

export function ConversationPage({ messenger, threadId }: { messenger: Messenger; threadId: string }) {
  const thread = messenger.thread(threadId);
  if (thread === null) {
    return (
      <>
        <h1>Thread not found</h1>
        <p>
          This browser has no thread at this address: you may not be a member, or it has not arrived yet.{' '}
          <a href={THREADS_HREF}>Back to your threads</a>.
        </p>
      </>
    );
  }
  return <Conversation messenger={messenger} thread={thread} />;
}

function Conversation({ messenger, thread }: { messenger: Messenger; thread: ThreadView }) {
  const threadId = thread.threadId;
  const messages = messenger.messages(threadId);
  const newest = messages.at(-1)?.seq ?? null;
  const inThread = thread.left === null;
  const [recalling, setRecalling] = useState<MessageView | null>(null);
  useReadAndReceipts(messenger, thread, newest);

  return (
    <>
      <p class="back">
        <a href={THREADS_HREF}>All threads</a>
      </p>
      <h1>{subjectOf(thread.subject)}</h1>
      <p class="subtitle">
        {thread.memberNames.length === 0 ? 'No one else is in this thread.' : `With ${thread.memberNames.join(', ')}`}
      </p>
      {thread.lifespanS !== null && (
        <p class="subtitle" data-testid="lifespan-note">
          Messages disappear after {lifespanText(thread.lifespanS)}
        </p>
      )}
      {thread.left !== null && (
        <p role="note" class="notice">
          {leftSentence(thread.left)} at <ShortTime ms={thread.left.atMs} />. You can read what arrived before, but not
          write here.
        </p>
      )}
      <div class={inThread ? 'conversation' : undefined}>
        <section aria-labelledby="messages-heading">
          <h2 id="messages-heading" class="visually-hidden">
            Messages
          </h2>
          <MessageList
            messenger={messenger}
            threadId={threadId}
            messages={messages}
            receipts={messenger.receipts(threadId)}
            onRecall={inThread ? setRecalling : null}
          />
          {inThread && <Compose messenger={messenger} threadId={threadId} />}
        </section>
        {inThread && (
          <div class="conversation-side">
            <UrgentPanel messenger={messenger} messages={messages} />
            <MembersPanel messenger={messenger} threadId={threadId} />
            <LifespanPanel messenger={messenger} thread={thread} />
          </div>
        )}
      </div>
      {recalling !== null && (
        <Confirm
          title="Recall this message?"
          confirmLabel="Recall"
          onClose={() => setRecalling(null)}
          onConfirm={() => messenger.recall(threadId, recalling.seq)}
        >
          {recalling.text !== '' && <p class="message-text">{recalling.text}</p>}
          {recalling.attachments.length > 0 && (
            <ul>
              {recalling.attachments.map((file) => (
                <li key={file.id} class="file-name">
                  {file.name}
                </li>
              ))}
            </ul>
          )}
          <p>
            The server erases it{recalling.attachments.length > 0 ? ' and its files' : ''}, and every member’s device
            deletes it as it catches up; the thread shows that you recalled a message. Someone may already have read it.
          </p>
        </Confirm>
      )}
    </>
  );
}

/**
 * While the thread is on screen: marks it read when something new arrives
 * and the page is visible (or becomes so), and fetches the receipts again
 * on opening and whenever a message is added (the user's or another's).
 */
function useReadAndReceipts(messenger: Messenger, thread: ThreadView, newest: number | null): void {
  const { threadId, unread } = thread;
  const inThread = thread.left === null;

  useEffect(() => {
    if (!inThread) {
      return;
    }
    // Receipts are a courtesy: a failure shows as no change, and the
    // messenger reports a lost connection itself.
    messenger.refreshReceipts(threadId).catch(() => undefined);
  }, [messenger, threadId, newest, inThread]);

  useEffect(() => {
    if (!inThread || unread === 0) {
      return undefined;
    }
    // A read receipt says a person saw it: not while the tab is hidden.
    const mark = () => {
      if (document.visibilityState === 'visible') {
        messenger.markRead(threadId).catch(() => undefined);
      }
    };
    mark();
    document.addEventListener('visibilitychange', mark);
    return () => document.removeEventListener('visibilitychange', mark);
  }, [messenger, threadId, unread, newest, inThread]);
}

interface ListProps {
  messenger: Messenger;
  threadId: string;
  messages: MessageView[];
  receipts: ReceiptsView | null;
  /** Asks to recall one of the user's messages; null when they cannot. */
  onRecall: ((message: MessageView) => void) | null;
}

function MessageList({ messenger, threadId, messages, receipts, onRecall }: ListProps) {
  const list = useRef<HTMLOListElement>(null);
  const opened = useRef(false);
  const newest = messages.at(-1)?.seq ?? null;

  // Show the newest message (and the form under it) on opening, and when
  // one arrives while the one before it was in view; never pull someone
  // reading the history away from it.
  useEffect(() => {
    const items = list.current?.children;
    const last = items?.[items.length - 1];
    if (items === undefined || last === undefined) {
      return undefined;
    }
    const before = items[items.length - 2];
    const follow = !opened.current || before === undefined || before.getBoundingClientRect().top < window.innerHeight;
    opened.current = true;
    if (!follow) {
      return undefined;
    }
    // In the next frame: after the shell has focused the heading, which
    // scrolls the page up to it.
    const frame = requestAnimationFrame(() => {
      const area = last.closest('section') ?? last;
      if (area.getBoundingClientRect().bottom > window.innerHeight) {
        area.scrollIntoView({ block: 'end' });
      }
    });
    return () => cancelAnimationFrame(frame);
  }, [newest]);

  return (
    <>
      {messages.length === 0 && <p class="muted">No messages yet.</p>}
      {/* Always there, even empty, so that the first message is announced
          too; only new messages are, not receipts changing under old ones. */}
      <ol class="messages" ref={list} aria-live="polite" aria-relevant="additions">
        {messages.map((message) => (
          <MessageItem
            key={message.seq}
            messenger={messenger}
            threadId={threadId}
            message={message}
            receipts={receipts}
            onRecall={onRecall}
          />
        ))}
      </ol>
    </>
  );
}

function MessageItem({
  messenger,
  threadId,
  message,
  receipts,
  onRecall,
}: {
  messenger: Messenger;
  threadId: string;
  message: MessageView;
  receipts: ReceiptsView | null;
  onRecall: ((message: MessageView) => void) | null;
}) {
  const common = { 'data-seq': message.seq, 'data-kind': message.kind, 'data-urgent': message.urgent === null ? undefined : 'true' };
  const classes = ['message', ...(message.mine ? ['mine'] : []), ...(message.urgent === null ? [] : ['urgent'])].join(' ');
  const meta = (
    <p class="message-meta">
      {message.urgent !== null && (
        <>
          <UrgentBadge />{' '}
        </>
      )}
      <span class="person-name">{message.senderName}</span> <ShortTime ms={message.atMs} />
    </p>
  );
  switch (message.kind) {
    case 'forward':
      return (
        <li {...common} class={classes}>
          {meta}
          {message.forward !== null && (
            <p>
              Urgent message from <span class="person-name">{message.forward.senderName}</span> at{' '}
              <ShortTime ms={message.forward.sentAtMs} />, passed on:
            </p>
          )}
          <p class="message-text" id={`message-${message.seq}`}>
            {message.text}
          </p>
          <UrgentStatusLine messenger={messenger} threadId={threadId} message={message} describedBy={`message-${message.seq}`} />
        </li>
      );
    case 'text':
      return (
        <li {...common} class={classes}>
          {meta}
          {message.text !== '' && (
            <p class="message-text" id={`message-${message.seq}`}>
              {message.text}
            </p>
          )}
          <AttachmentList messenger={messenger} threadId={threadId} seq={message.seq} attachments={message.attachments} />
          <UrgentStatusLine messenger={messenger} threadId={threadId} message={message} describedBy={describedBy(message) || undefined} />
          {message.mine && (
            <p class="receipt">
              {receiptText(message.seq, receipts)}
              {onRecall !== null && (
                <>
                  {' · '}
                  <button
                    type="button"
                    class="link-button"
                    aria-describedby={describedBy(message)}
                    onClick={() => onRecall(message)}
                  >
                    Recall
                  </button>
                </>
              )}
            </p>
          )}
        </li>
      );
    case 'recalled':
      return (
        <li {...common} class="message-system">
          {message.senderName} recalled a message · <ShortTime ms={message.atMs} />
        </li>
      );
    case 'undecryptable':
      return (
        <li {...common} class="message message-undecryptable">
          <p class="message-meta">
            <span class="person-name">{message.senderName}</span> <ShortTime ms={message.atMs} />
          </p>
          <p>
            <span aria-hidden="true">⚠ </span>A message that could not be decrypted: {message.text}
          </p>
        </li>
      );
    case 'subject':
    case 'added':
    case 'removed':
    case 'lifespan':
      return (
        <li {...common} class="message-system">
          {systemSentence(message)} · <ShortTime ms={message.atMs} />
        </li>
      );
  }
}

/** What describes a message's actions: its text and its files' names. */
function describedBy(message: MessageView): string {
  return [
    ...(message.text === '' ? [] : [`message-${message.seq}`]),
    ...message.attachments.map((file) => attachmentLabelId(message.seq, file.id)),
  ].join(' ');
}

/** A change to the thread as a sentence (`added`/`removed`/`lifespan` come as one). */
function systemSentence(message: MessageView): string {
  return message.kind === 'subject' ? `${message.senderName} set the subject to “${message.text}”` : message.text;
}

/** The most files one message carries (the server's limit). */
const MAX_FILES = 20;

function Compose({ messenger, threadId }: { messenger: Messenger; threadId: string }) {
  const [text, setText] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [urgent, setUrgent] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  // Two quick Enters come before the re-render that disables the button.
  const sending = useRef(false);

  const send = async () => {
    const sent = text;
    const attached = files;
    if (sending.current || (sent.trim() === '' && attached.length === 0)) {
      return;
    }
    sending.current = true;
    setBusy(true);
    setError(null);
    try {
      await messenger.send(threadId, sent, attached, urgent);
      // Keep whatever was typed or chosen meanwhile; clear only what went out.
      setText((now) => (now === sent ? '' : now));
      setFiles((now) => now.filter((file) => !attached.includes(file)));
      // Urgent is for one message at a time, never left on by accident.
      setUrgent(false);
      input.current?.focus();
    } catch (caught) {
      // The text and files stay, to send again.
      setError(`Not sent: ${api.messageOf(caught)}`);
    } finally {
      sending.current = false;
      setBusy(false);
    }
  };

  /** Adds the files chosen, refusing those too large to send (said at once, not after an upload). */
  const choose = (chosen: FileList | null) => {
    const picked = [...(chosen ?? [])];
    const tooLarge = picked.filter((file) => file.size > MAX_FILE_BYTES);
    const fitting = picked.filter((file) => file.size <= MAX_FILE_BYTES);
    const room = Math.max(0, MAX_FILES - files.length);
    const problems: string[] = [];
    if (tooLarge.length > 0) {
      problems.push(
        `${tooLarge.map((file) => `“${file.name}” (${sizeText(file.size)})`).join(', ')} cannot be sent: a file may be at most ${sizeText(MAX_FILE_BYTES)}.`,
      );
    }
    if (fitting.length > room) {
      problems.push(`A message can carry at most ${MAX_FILES} files; send the others in another message.`);
    }
    setError(problems.length === 0 ? null : problems.join(' '));
    setFiles((now) => [...now, ...fitting.slice(0, room)]);
  };

  return (
    <form
      class="compose"
      onSubmit={(event) => {
        event.preventDefault();
        void send();
      }}
    >
      <label for="compose-text">Message</label>
      <textarea
        id="compose-text"
        ref={input}
        rows={3}
        aria-describedby="compose-help"
        value={text}
        onInput={(event) => setText(event.currentTarget.value)}
        onKeyDown={(event) => {
          // Enter sends; Shift+Enter is a new line; Enter that ends an
          // input method's composition (Japanese, say) is not a send.
          if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
            event.preventDefault();
            void send();
          }
        }}
      />
      <small id="compose-help">Enter sends; Shift+Enter starts a new line.</small>
      <label for="compose-files">Attach files</label>
      <input
        id="compose-files"
        type="file"
        multiple
        aria-describedby="compose-files-help"
        onChange={(event) => {
          choose(event.currentTarget.files);
          // Emptied, so that the same file can be chosen again after removing it.
          event.currentTarget.value = '';
        }}
      />
      <small id="compose-files-help">
        Up to {MAX_FILES} files of at most {sizeText(MAX_FILE_BYTES)} each, encrypted in this browser before they are
        sent.
      </small>
      {files.length > 0 && (
        <ul class="compose-files" aria-label="Files to send">
          {files.map((file, index) => (
            <li key={`${index}-${file.name}`}>
              <span id={`compose-file-${index}`}>
                <span class="file-name">{file.name}</span> <span class="muted">({sizeText(file.size)})</span>
              </span>
              <button
                type="button"
                class="link-button"
                aria-describedby={`compose-file-${index}`}
                disabled={busy}
                onClick={() => setFiles((now) => now.filter((kept) => kept !== file))}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <label for="compose-urgent" class="compose-urgent">
        <input
          id="compose-urgent"
          type="checkbox"
          role="switch"
          aria-describedby="compose-urgent-help"
          checked={urgent}
          disabled={busy}
          onChange={(event) => setUrgent(event.currentTarget.checked)}
        />
        Urgent
      </label>
      <p id="compose-urgent-help">
        <small>
          Its recipients are asked to acknowledge it; if nobody does in time, they are alerted again, then a backup is
          asked in.
        </small>
      </p>
      <ErrorText error={error} />
      {busy && files.length > 0 && (
        <p role="status" class="muted">
          Encrypting and sending {files.length === 1 ? 'the file' : `${files.length} files`}…
        </p>
      )}
      <button type="submit" disabled={busy} aria-busy={busy} class={urgent ? 'urgent-send' : undefined}>
        Send
      </button>
    </form>
  );
}
