// The clinician app's page chrome: a skip link, the header with who is
// signed in and the actions at hand, optional navigation, and the main
// region. Every screen (the policy, the passphrase, the threads) has the
// same landmarks, so a screen reader finds its way the same on each.

import type { ComponentChildren } from 'preact';

import type { Me } from '../state';
import { APP_NAME } from './bits';

interface Props {
  me: Me;
  /** Where the app's name links to (nowhere before the threads are open). */
  home?: string;
  /** Beside the user's name: the connection's state. */
  status?: ComponentChildren;
  /** The header's buttons. */
  actions: ComponentChildren;
  nav?: ComponentChildren;
  footer?: ComponentChildren;
  children: ComponentChildren;
}

export function Frame({ me, home, status, actions, nav, footer, children }: Props) {
  const skip = (event: Event) => {
    event.preventDefault();
    // The hash is the route: focus the main region instead of following #main.
    document.getElementById('main')?.focus();
  };

  return (
    <>
      <a class="skip-link" href="#main" onClick={skip}>
        Skip to main content
      </a>
      <header class="site-header">
        <div class="container header-row">
          {home === undefined ? (
            <span class="brand">{APP_NAME}</span>
          ) : (
            <a href={home} class="brand">
              {APP_NAME}
            </a>
          )}
          <div class="who">
            <span>{me.displayName}</span>
            {status}
            {actions}
          </div>
        </div>
        {nav}
      </header>
      <main id="main" class="container" tabIndex={-1}>
        {children}
      </main>
      {footer !== undefined && <footer class="container site-footer">{footer}</footer>}
    </>
  );
}
