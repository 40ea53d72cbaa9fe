// A page for a capability not built yet, so the navigation has its place.

import type { ComponentChildren } from 'preact';

export function Placeholder({ title, issue, children }: { title: string; issue: number; children: ComponentChildren }) {
  return (
    <>
      <h1>{title}</h1>
      <article class="placeholder">
        <p>
          <strong>Not built yet.</strong> Curbside does not have this capability today; issue {issue} adds it, and its
          administration will appear on this page.
        </p>
        <p>What will be here: {children}</p>
      </article>
    </>
  );
}
