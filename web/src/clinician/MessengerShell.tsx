// The threads, once open: the header with the connection's state, the
// navigation, the urgent messages re-alerted, and the screen the route
// names. Re-rendered on every change the messenger reports (the screens
// read its views while rendering).

import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

import { ErrorText } from '../components/Bits';
import { ConnectionText, focusHeading, useMessengerUpdates, useTitle } from './bits';
import { ConversationPage } from './ConversationPage';
import { Frame } from './Frame';
import type { Messenger } from './model';
import { NewThreadPage } from './NewThreadPage';
import { type ClinicianRoute, NEW_THREAD_HREF, routeKey, THREADS_HREF, useClinicianRoute } from './route';
import { ThreadsPage } from './ThreadsPage';
import { UrgentAlerts } from './Urgent';

/**
 * Window titles. Never a thread's subject: titles are kept in the
 * browser's history in the clear, and subjects are as confidential as the
 * messages.
 */
const TITLES: Record<ClinicianRoute['page'], string> = {
  threads: 'Threads',
  thread: 'Thread',
  new: 'New thread',
};

interface Props {
  messenger: Messenger;
  /** The header's buttons (lock, sign out…), which the app owns. */
  actions: ComponentChildren;
  footer: ComponentChildren;
}

export function MessengerShell({ messenger, actions, footer }: Props) {
  useMessengerUpdates(messenger);
  const route = useClinicianRoute();
  const key = routeKey(route);
  useTitle(TITLES[route.page]);

  // The screen that opens with the threads gets focus from the app; later
  // ones here.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    focusHeading();
  }, [key]);

  return (
    <Frame
      me={messenger.me}
      home={THREADS_HREF}
      status={<ConnectionText status={messenger.status()} />}
      actions={actions}
      nav={<Nav route={route} />}
      footer={footer}
    >
      <ErrorText error={messenger.lastError()} />
      <UrgentAlerts messenger={messenger} />
      <Screen route={route} messenger={messenger} />
    </Frame>
  );
}

function Nav({ route }: { route: ClinicianRoute }) {
  const links = [
    { href: THREADS_HREF, label: 'Threads', current: route.page !== 'new' },
    { href: NEW_THREAD_HREF, label: 'New thread', current: route.page === 'new' },
  ];
  return (
    <nav aria-label="Main" class="container">
      <ul class="nav-pages">
        {links.map((link) => (
          <li key={link.href}>
            <a href={link.href} aria-current={link.current ? 'page' : undefined}>
              {link.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function Screen({ route, messenger }: { route: ClinicianRoute; messenger: Messenger }) {
  switch (route.page) {
    case 'threads':
      return <ThreadsPage messenger={messenger} />;
    case 'thread':
      return <ConversationPage key={route.threadId} messenger={messenger} threadId={route.threadId} />;
    case 'new':
      return <NewThreadPage messenger={messenger} />;
  }
}
