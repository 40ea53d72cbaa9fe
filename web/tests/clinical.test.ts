// The clinical workflow's wire pieces (src/clinician/clinical.ts), in
// Node: a `forward` reads only in the CLI's exact shape (the fields of
// `curbside_proto::content::Content::Forward`, nothing more or less, of
// the right types), and the roles read as the new-thread page shows them:
// who holds each now, and whose shift is next (not the current one's).
// Run by `npm run test:mls` (.ci/run).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readForward, roleViews } from '../src/clinician/clinical';

const ANA = 'a'.repeat(32);

test('a forward reads only in the CLI’s shape', () => {
  // As serde writes it: the tag, then the fields in order.
  const wire = JSON.parse(`{"type":"forward","seq":7,"sender_user":"${ANA}","sent_at_ms":1700000000000,"text":"BP 70/40"}`) as Record<string, unknown>;
  assert.deepEqual(readForward(wire), { type: 'forward', seq: 7, sender_user: ANA, sent_at_ms: 1_700_000_000_000, text: 'BP 70/40' });
  assert.deepEqual(Object.keys(readForward(wire) ?? {}), ['type', 'seq', 'sender_user', 'sent_at_ms', 'text']);
  for (const wrong of [
    { ...wire, extra: 1 },
    { ...wire, seq: 0 },
    { ...wire, seq: 1.5 },
    { ...wire, seq: '7' },
    { ...wire, sender_user: 'Dr. Ana Alvarez' },
    { ...wire, sent_at_ms: null },
    { ...wire, text: 42 },
    { ...wire, type: 'text' },
  ]) {
    assert.equal(readForward(wrong), null, JSON.stringify(wrong));
  }
  const withoutText = { ...wire };
  delete withoutText['text'];
  assert.equal(readForward(withoutText), null);
});

test('roles show who holds them now and whose shift is next', () => {
  const shift = (id: string, user: string, starts: number, ends: number) => ({
    shift_id: id,
    role_id: 'r1',
    user_id: user.repeat(32),
    display_name: `Dr. ${user.toUpperCase()}`,
    starts_at_ms: starts,
    ends_at_ms: ends,
    timezone: 'UTC',
  });
  const before = shift('s0', 'a', 0, 900);
  const now = shift('s1', 'b', 500, 2000);
  // A handoff: it started before `now_ms`, overlapping, and is not next.
  const handoff = shift('s2', 'c', 800, 3000);
  const next = shift('s3', 'd', 2000, 4000);
  const later = shift('s4', 'e', 5000, 6000);
  const views = roleViews({
    now_ms: 1000,
    roles: [
      { role_id: 'r1', name: 'Cardiology on-call', department: 'Cardiology', holder: handoff, shifts: [before, now, handoff, next, later] },
      { role_id: 'r2', name: 'Night registrar', department: '', holder: null, shifts: [] },
    ],
  });
  assert.deepEqual(views[0], {
    roleId: 'r1',
    name: 'Cardiology on-call',
    department: 'Cardiology',
    holder: { userId: 'c'.repeat(32), displayName: 'Dr. C', startsAtMs: 800, endsAtMs: 3000 },
    next: { userId: 'd'.repeat(32), displayName: 'Dr. D', startsAtMs: 2000, endsAtMs: 4000 },
  });
  assert.deepEqual(views[1], { roleId: 'r2', name: 'Night registrar', department: '', holder: null, next: null });
});
