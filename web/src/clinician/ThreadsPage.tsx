// The thread list: the threads this device is in, most recently active
// first, with what is unread; then the threads it has left.

import { navigate } from '../route';
import { leftSentence, ShortTime, subjectOf } from './bits';
import type { Messenger, ThreadView } from './model';
import { NEW_THREAD_HREF, threadHref } from './route';

export function ThreadsPage({ messenger }: { messenger: Messenger }) {
  const threads = messenger.threads();
  const current = threads.filter((thread) => thread.left === null);
  const left = threads.filter((thread) => thread.left !== null);

  return (
    <>
      <div class="page-head">
        <h1>Threads</h1>
        <button type="button" onClick={() => navigate(NEW_THREAD_HREF)}>
          New thread
        </button>
      </div>
      {current.length === 0 ? (
        <p>No threads yet. Start one with “New thread”, or wait for a colleague to add you to theirs.</p>
      ) : (
        <CurrentThreads threads={current} />
      )}
      {left.length > 0 && <LeftThreads threads={left} />}
    </>
  );
}

function CurrentThreads({ threads }: { threads: ThreadView[] }) {
  return (
    <div class="table-scroll">
      <table class="striped threads">
        <caption class="visually-hidden">Your threads, most recently active first</caption>
        <thead>
          <tr>
            <th scope="col">Subject</th>
            <th scope="col">With</th>
            <th scope="col">Unread</th>
            <th scope="col">Latest message</th>
            <th scope="col">When</th>
          </tr>
        </thead>
        <tbody>
          {threads.map((thread) => (
            <tr key={thread.threadId} class={thread.unread > 0 ? 'has-unread' : undefined}>
              <th scope="row">
                <a href={threadHref(thread.threadId)}>{subjectOf(thread.subject)}</a>
              </th>
              <td>{thread.memberNames.join(', ')}</td>
              <td>
                {thread.unread > 0 && (
                  <span class="badge">
                    {thread.unread}
                    <span class="visually-hidden"> unread</span>
                  </span>
                )}
              </td>
              <td class="preview">{thread.preview ?? <span class="muted">—</span>}</td>
              <td>{thread.lastActivityMs !== null && <ShortTime ms={thread.lastActivityMs} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LeftThreads({ threads }: { threads: ThreadView[] }) {
  return (
    <section aria-labelledby="threads-left">
      <h2 id="threads-left">Threads you have left</h2>
      <div class="table-scroll">
        <table class="striped threads">
          <thead>
            <tr>
              <th scope="col">Subject</th>
              <th scope="col">What happened</th>
              <th scope="col">When</th>
            </tr>
          </thead>
          <tbody>
            {threads.map((thread) =>
              thread.left === null ? null : (
                <tr key={thread.threadId}>
                  <th scope="row">
                    <a href={threadHref(thread.threadId)}>{subjectOf(thread.subject)}</a>
                  </th>
                  <td>{leftSentence(thread.left)}.</td>
                  <td>
                    <ShortTime ms={thread.left.atMs} />
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
