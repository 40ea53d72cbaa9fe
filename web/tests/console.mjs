// Drives the console in Debian's Chromium (headless) the way a person
// would: by roles, labels and button names. One phase per run:
//
//   node web/tests/console.mjs enroll-admin|review|retention|auditor-retention|roles|auditor-roles|deactivate|verify
//
// Inputs come from the environment (APP_URL, PROFILE_DIR, CHROMIUM and
// each phase's own; `enroll-admin` compares the audit key it pins with
// AUDIT_KEY when that is set); the last line printed is the phase's
// result as JSON.
// Every phase fails on a request to any other origin, on a console error
// (CSP violations included) or an uncaught page error (browser.mjs), and
// `review` on any serious or critical axe-core violation. The browser
// trusts the server's test CA through $HOME/.pki/nssdb: no certificate
// error is ignored.

import { join } from 'node:path';

import { BrowserSession, escapeRegExp, need, runPhase } from './browser.mjs';

class Console extends BrowserSession {
  async signIn() {
    await this.open();
    await this.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await this.page.getByRole('navigation', { name: 'Main' }).waitFor();
    await this.heading('Overview');
  }

  async goTo(label, heading = label) {
    await this.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
    await this.heading(heading);
  }

  /** Audit page: verifies the whole log; what the page says. */
  async verifyLog() {
    const section = this.page.getByRole('region', { name: 'Verify the log' });
    await section.getByRole('button', { name: 'Verify the log' }).click();
    const verdict = section
      .getByRole('status')
      .filter({ hasText: /^Verified / })
      .or(section.getByRole('alert'));
    await verdict.first().waitFor({ timeout: 120_000 });
    const text = (await verdict.first().innerText()).trim();
    const ok = /^Verified /.test(text);
    const verified = /^Verified (\d+) entries/.exec(text);
    const broken = /^Entry (\d+) is broken/.exec(text);
    return {
      ok,
      entries: verified ? Number(verified[1]) : null,
      broken_seq: broken ? Number(broken[1]) : null,
      message: text,
    };
  }

  /**
   * Runs `step`, in which the server refuses one request with `status` on
   * purpose: Chromium's console note of that failed request is expected
   * (waited for up to 2 s), not a problem; any other still is.
   */
  async refusedOnPurpose(status, step) {
    const before = this.problems.length;
    await step();
    const note = `console error: Failed to load resource: the server responded with a status of ${status}`;
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline) {
      const index = this.problems.findIndex((problem, at) => at >= before && problem.startsWith(note));
      if (index >= 0) {
        this.problems.splice(index, 1);
        return;
      }
      await this.page.waitForTimeout(50);
    }
  }
}

async function enrollAdmin(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  await c.open();
  await c.heading('Enroll this browser');
  await c.axe('enroll');
  await page.getByLabel('Enrollment code').fill(need('FIRST_ADMIN_CODE'));
  await page.getByLabel('Your name (first administrator only)').fill(need('ADMIN_NAME'));
  await page.getByRole('button', { name: 'Enroll this browser' }).click();
  // Enrolled: the audit key is shown to compare with the one the server
  // printed at start (AUDIT_KEY, if given), then pinned.
  await c.heading('Pin the audit key');
  const shownKey = (await page.getByLabel('Audit key the server publishes now').inputValue()).trim();
  if (!/^curbside-audit\/[0-9a-f]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/.test(shownKey)) {
    throw new Error(`the page shows no audit key: ${JSON.stringify(shownKey)}`);
  }
  const recordedKey = process.env.AUDIT_KEY;
  if (recordedKey !== undefined && recordedKey !== '' && recordedKey !== shownKey) {
    throw new Error(`the page shows the audit key ${shownKey}, not the one the server printed, ${recordedKey}`);
  }
  await c.axe('pin-audit-key');
  await page.getByRole('button', { name: 'Pin this audit key' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await c.heading('Overview');

  const { id, code } = await addPerson(c, clinician, 'Clinician', need('CLINICIAN_DEPARTMENT'));
  return { clinician_id: id, code };
}

/** People: creates a user and issues their enrollment code; their id and the code. */
async function addPerson(c, name, role, department) {
  const page = c.page;
  await c.goTo('People');
  const form = page.getByRole('region', { name: 'Add a person' });
  await form.getByLabel('Display name').fill(name);
  await form.getByLabel('Role').selectOption({ label: role });
  await form.getByLabel('Department').fill(department);
  await form.getByRole('button', { name: 'Create user' }).click();
  await c.heading(name);
  const match = /#\/people\/([^/]+)$/.exec(page.url());
  if (!match) {
    throw new Error(`the new user's page has no id in its address: ${page.url()}`);
  }
  const id = decodeURIComponent(match[1]);

  await page.getByRole('button', { name: 'Issue enrollment code' }).click();
  const code = await page.getByLabel('New enrollment code', { exact: true }).inputValue();
  if (!/^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/.test(code)) {
    throw new Error(`the page shows no enrollment code: ${JSON.stringify(code)}`);
  }
  await page.getByRole('img', { name: /^QR code of the enrollment code/ }).waitFor();
  return { id, code };
}

async function review(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  const exportDir = need('EXPORT_DIR');
  need('SCREENSHOT_DIR');
  const policyText = need('POLICY_TEXT');

  await c.open();
  await c.heading('Sign in to Curbside');
  await c.axe('sign-in');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await c.heading('Overview');
  await page.getByRole('heading', { name: 'People and sessions' }).waitFor();
  await c.axe('overview');
  await c.screenshot('overview');

  await c.goTo('People');
  await page.getByRole('link', { name: clinician, exact: true }).waitFor();
  await c.axe('people');
  await c.screenshot('people');

  await page.getByRole('link', { name: clinician, exact: true }).click();
  await c.heading(clinician);
  await page.getByRole('heading', { name: 'Active sessions' }).waitFor();
  await c.axe('people-detail');
  await c.screenshot('people-detail');

  // Audit: the clinician's entries, found by name.
  await c.goTo('Audit');
  await c.settled();
  await page.getByLabel('Person').fill(clinician);
  await page
    .getByRole('list', { name: 'Matching people' })
    .getByRole('button', { name: new RegExp(`^${escapeRegExp(clinician)}`) })
    .click();
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const rows = page.locator('table.audit-table tbody tr');
  const named = rows.filter({ hasText: clinician });
  await named.first().waitFor();
  // Every row is the clinician's (the filter is by their id); wait until
  // each shows the name beside the id.
  let auditRows = 0;
  for (let tries = 0; tries < 100; tries++) {
    const [all, withName] = [await rows.count(), await named.count()];
    auditRows = withName;
    if (all === withName) {
      break;
    }
    await page.waitForTimeout(100);
  }
  if (auditRows < 1) {
    throw new Error('the audit table shows no entry with the clinician’s name');
  }
  await c.axe('audit');
  await c.screenshot('audit');

  const saved = {};
  for (const [format, label] of [
    ['csv', 'Export CSV'],
    ['jsonl', 'Export JSON Lines'],
  ]) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: label, exact: true }).click(),
    ]);
    const path = join(exportDir, download.suggestedFilename() || `audit.${format}`);
    await download.saveAs(path);
    saved[format] = path;
  }

  // The whole log, verified in the browser: the filter does not apply.
  const verified = await c.verifyLog();
  if (!verified.ok) {
    throw new Error(`the log did not verify: ${verified.message}`);
  }

  // Policy: publish a new version.
  await c.goTo('Policy');
  await c.settled();
  await page.getByLabel('New policy text').fill(policyText);
  await page.getByRole('button', { name: 'Publish new version' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Publish', exact: true }).click();
  const published = page.getByRole('status').filter({ hasText: /^Published version \d+\.$/ });
  await published.waitFor();
  const version = Number(/(\d+)/.exec(await published.innerText())[1]);
  await page.getByText(policyText).first().waitFor();
  await c.axe('policy');
  await c.screenshot('policy');

  // Roles & escalation before anything is set up (the `roles` phase
  // takes its screenshot).
  await c.goTo('Roles & escalation');
  await page.getByText('No role has been created.', { exact: true }).waitFor();
  await c.axe('roles-empty');

  return {
    audit_rows: auditRows,
    csv: saved.csv,
    jsonl: saved.jsonl,
    verified_entries: verified.entries,
    policy_version: version,
  };
}

const RETENTION_OFF = 'Off — thread content is kept until its thread’s own lifespan or a recall removes it.';
const RETENTION_ON = 'Thread content older than 10 years is purged.';

/**
 * Retention & holds, as the administrator: turns retention on at 10
 * years, tries a hold on a malformed and on an unknown thread (the page
 * and then the server refuse), places one on the clinician and lifts it;
 * then adds an auditor and issues their code.
 */
async function retention(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  const admin = need('ADMIN_NAME');
  const reason = need('HOLD_REASON');
  need('SCREENSHOT_DIR');
  await c.signIn();
  await c.goTo('Retention & holds');
  await c.settled();

  const policy = page.getByRole('region', { name: 'Retention policy', exact: true });
  await policy.getByText(RETENTION_OFF, { exact: true }).waitFor();
  await policy.getByLabel('Purge thread content older than a maximum age', { exact: true }).check();
  await policy.getByLabel('Maximum age', { exact: true }).fill('10');
  await policy.getByLabel('Unit', { exact: true }).selectOption('years');
  await policy.getByRole('button', { name: 'Save retention policy', exact: true }).click();
  const confirm = page.getByRole('dialog', { name: 'Purge thread content older than 10 years?', exact: true });
  await confirm.getByText(/permanently deletes every message and attachment older than 10 years/).waitFor();
  await confirm.getByRole('button', { name: 'Turn on retention', exact: true }).click();
  await policy.getByRole('status').filter({ hasText: RETENTION_ON }).waitFor();
  await policy.getByText(RETENTION_ON, { exact: true }).waitFor();
  // Who set it, by name.
  await policy.getByText(admin, { exact: true }).waitFor();

  const place = page.getByRole('region', { name: 'Place a legal hold', exact: true });
  await place.getByLabel('Reason', { exact: true }).fill(reason);
  // A thread id the page refuses, then one the server does not know.
  await place.getByLabel('One thread', { exact: true }).check();
  await place.getByLabel('Thread id', { exact: true }).fill('not-a-thread');
  await place.getByRole('button', { name: 'Place hold', exact: true }).click();
  await place.getByRole('alert').filter({ hasText: '32 characters' }).waitFor();
  await place.getByLabel('Thread id', { exact: true }).fill('0'.repeat(32));
  const refused = place.getByRole('alert').filter({ hasNotText: '32 characters' });
  await c.refusedOnPurpose(404, async () => {
    await place.getByRole('button', { name: 'Place hold', exact: true }).click();
    await refused.waitFor();
  });
  const unknownThread = (await refused.innerText()).trim();

  // The clinician, picked by name.
  await place.getByLabel('A person: every thread they are or were a member of', { exact: true }).check();
  await place.getByLabel('Person', { exact: true }).fill(clinician);
  await place
    .getByRole('list', { name: 'Matching people' })
    .getByRole('button', { name: new RegExp(`^${escapeRegExp(clinician)}`) })
    .click();
  await place.getByRole('button', { name: 'Place hold', exact: true }).click();
  await place.getByRole('status').filter({ hasText: `Placed a hold on ${clinician}.` }).waitFor();

  const holds = page.getByRole('region', { name: 'Legal holds', exact: true });
  const row = holds.getByRole('row').filter({ hasText: reason });
  await row.getByText('Active', { exact: true }).waitFor();
  await row.getByText(clinician, { exact: true }).waitFor();
  await row.getByRole('button', { name: `Lift the hold on ${clinician}`, exact: true }).click();
  const lift = page.getByRole('dialog', { name: 'Lift this legal hold?', exact: true });
  await lift.getByText(reason).waitFor();
  await lift.getByRole('button', { name: 'Lift hold', exact: true }).click();
  await holds.getByRole('status').filter({ hasText: `Lifted the hold on ${clinician}.` }).waitFor();
  await row.getByText(/^Lifted /).waitFor();
  if ((await row.getByText('Active', { exact: true }).count()) !== 0 || (await row.getByRole('button').count()) !== 0) {
    throw new Error('the lifted hold is still shown as active, or can still be lifted');
  }
  await c.axe('retention');
  await c.screenshot('retention');

  const auditor = await addPerson(c, need('AUDITOR_NAME'), 'Auditor', 'Compliance');
  return { unknown_thread: unknownThread, auditor_id: auditor.id, auditor_code: auditor.code };
}

/**
 * Retention & holds, as an auditor in a browser of their own (enrolled
 * with AUDITOR_CODE): the policy and the lifted hold, and no control.
 */
async function auditorRetention(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  const reason = need('HOLD_REASON');
  await c.open();
  await c.heading('Enroll this browser');
  await page.getByLabel('Enrollment code').fill(need('AUDITOR_CODE'));
  await page.getByRole('button', { name: 'Enroll this browser' }).click();
  await c.heading('Pin the audit key');
  await page.getByRole('button', { name: 'Pin this audit key' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await c.heading('Overview');

  await c.goTo('Retention & holds');
  await c.settled();
  const policy = page.getByRole('region', { name: 'Retention policy', exact: true });
  await policy.getByText(RETENTION_ON, { exact: true }).waitFor();
  await policy.getByText(need('ADMIN_NAME'), { exact: true }).waitFor();
  const holds = page.getByRole('region', { name: 'Legal holds', exact: true });
  const row = holds.getByRole('row').filter({ hasText: reason });
  await row.getByText(clinician, { exact: true }).waitFor();
  await row.getByText(/^Lifted /).waitFor();
  const controls = await page.getByRole('main').locator('button, input, select, textarea').count();
  if (controls !== 0) {
    throw new Error(`an auditor is shown ${controls} control(s) on Retention & holds`);
  }
  await c.axe('retention-auditor');
  return { controls };
}

/** A date-time input's value for the instant `ms` in `zone`: "2025-03-04T08:00". */
function wallClock(ms, zone) {
  const parts = {};
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
  for (const part of format.formatToParts(new Date(ms))) {
    parts[part.type] = part.value;
  }
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

/** Picks `name` in the person picker labelled `label` within `scope`. */
async function pickPerson(scope, label, name) {
  await scope.getByLabel(label, { exact: true }).fill(name);
  await scope
    .getByRole('list', { name: 'Matching people' })
    .getByRole('button', { name: new RegExp(`^${escapeRegExp(name)}`) })
    .click();
}

/**
 * Roles & escalation, as the administrator: creates ROLE_NAME in
 * ROLE_DEPARTMENT (a second time, which the server refuses), assigns the
 * clinician a shift covering now, planned in SHIFT_ZONE's wall-clock time
 * (from an hour ago, for eight hours), and one tomorrow that is then
 * cancelled; sets the department's escalation policy (re-alert after
 * 60 s, escalate after 300 s, after the page refused 30 s) with the role
 * as backup; then adds READER_NAME, an auditor, and issues their code.
 */
async function roles(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  const roleName = need('ROLE_NAME');
  const department = need('ROLE_DEPARTMENT');
  const zone = need('SHIFT_ZONE');
  need('SCREENSHOT_DIR');
  await c.signIn();
  await c.goTo('Roles & escalation');
  await c.settled();

  const create = page.getByRole('region', { name: 'Create a role', exact: true });
  await create.getByLabel('Name', { exact: true }).fill(roleName);
  await create.getByLabel('Department', { exact: true }).fill(department);
  await create.getByRole('button', { name: 'Create role', exact: true }).click();
  await create.getByRole('status').filter({ hasText: `Created the role ${roleName}.` }).waitFor();
  const card = page
    .getByRole('region', { name: 'Roles', exact: true })
    .getByRole('article', { name: roleName, exact: true });
  await card.getByText('No one holds this role now.', { exact: true }).waitFor();
  // The same name again: the server refuses it.
  await create.getByLabel('Name', { exact: true }).fill(roleName);
  await create.getByLabel('Department', { exact: true }).fill(department);
  const refused = create.getByRole('alert');
  await c.refusedOnPurpose(409, async () => {
    await create.getByRole('button', { name: 'Create role', exact: true }).click();
    await refused.waitFor();
  });
  const duplicateRole = (await refused.innerText()).trim();

  // A shift covering now, and one tomorrow, as SHIFT_ZONE's clocks read.
  const minute = 60_000;
  const hour = 60 * minute;
  const startsAt = Math.floor(Date.now() / minute) * minute - hour;
  const endsAt = startsAt + 8 * hour;
  const assign = page.getByRole('region', { name: 'Assign a shift', exact: true });
  const assignShift = async (from, until) => {
    await assign.getByLabel('Role', { exact: true }).selectOption({ label: roleName });
    await pickPerson(assign, 'Person', clinician);
    await assign.getByLabel('Time zone', { exact: true }).selectOption(zone);
    await assign.getByLabel('Starts', { exact: true }).fill(wallClock(from, zone));
    await assign.getByLabel('Ends', { exact: true }).fill(wallClock(until, zone));
    await assign.getByRole('button', { name: 'Assign shift', exact: true }).click();
  };
  const rows = card.getByRole('row').filter({ hasText: clinician });
  const current = rows.filter({ hasText: 'Holds the role' });
  const coming = rows.filter({ hasText: 'Coming' });
  await assignShift(startsAt, endsAt);
  await assign.getByRole('status').filter({ hasText: `Assigned ${clinician} to ${roleName}: ` }).waitFor();
  await current.waitFor();
  await assignShift(startsAt + 24 * hour, endsAt + 24 * hour);
  await coming.waitFor();
  for (const row of [current, coming]) {
    await row.getByRole('cell', { name: zone, exact: true }).waitFor();
  }

  await coming
    .getByRole('button', { name: new RegExp(`^Cancel the shift of ${escapeRegExp(clinician)} from `) })
    .click();
  const cancel = page.getByRole('dialog', { name: 'Cancel this shift?', exact: true });
  await cancel.getByRole('button', { name: 'Cancel shift', exact: true }).click();
  await page
    .getByRole('region', { name: 'Roles', exact: true })
    .getByRole('status')
    .filter({ hasText: `Cancelled ${clinician}’s shift as ${roleName}.` })
    .waitFor();
  await coming.waitFor({ state: 'detached' });
  await current.waitFor();
  if ((await card.getByText('No one holds this role now.', { exact: true }).count()) !== 0) {
    throw new Error('the role has a shift covering now, yet the page says no one holds it');
  }

  // The department's policy: the page refuses an escalation before the
  // re-alert, then the role is the backup.
  const policy = page.getByRole('region', { name: 'Set an escalation policy', exact: true });
  await policy.getByLabel('Department', { exact: true }).fill(department);
  await policy.getByLabel('Re-alert after (seconds)', { exact: true }).fill('60');
  await policy.getByLabel('Escalate after (seconds)', { exact: true }).fill('30');
  await policy.getByLabel('Whoever holds a role', { exact: true }).check();
  await policy.getByLabel('Backup role', { exact: true }).selectOption({ label: roleName });
  await policy.getByRole('button', { name: 'Save escalation policy', exact: true }).click();
  await policy.getByRole('alert').filter({ hasText: 'more than the re-alert time' }).waitFor();
  await policy.getByLabel('Escalate after (seconds)', { exact: true }).fill('300');
  await policy.getByRole('button', { name: 'Save escalation policy', exact: true }).click();
  await policy.getByRole('status').filter({ hasText: `Saved the escalation policy for ${department}.` }).waitFor();
  const policyRow = page
    .getByRole('region', { name: 'Escalation policies', exact: true })
    .getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: department, exact: true }) });
  await policyRow.getByRole('cell', { name: '1 min', exact: true }).waitFor();
  await policyRow.getByRole('cell', { name: '5 min', exact: true }).waitFor();
  await policyRow.getByText(roleName, { exact: true }).waitFor();

  // Afresh, as anyone opening the page sees it.
  await c.goTo('Overview');
  await c.goTo('Roles & escalation');
  await current.waitFor();
  await policyRow.getByText(roleName, { exact: true }).waitFor();
  await c.axe('roles');
  await c.screenshot('roles');

  const reader = await addPerson(c, need('READER_NAME'), 'Auditor', 'Compliance');
  return {
    duplicate_role: duplicateRole,
    starts_at_ms: startsAt,
    ends_at_ms: endsAt,
    reader_code: reader.code,
  };
}

/**
 * Roles & escalation, as the auditor (the browser `auditor-retention`
 * enrolled): the role, its holder and the policy, and no control.
 */
async function auditorRoles(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  const roleName = need('ROLE_NAME');
  const department = need('ROLE_DEPARTMENT');
  await c.signIn();
  await c.goTo('Roles & escalation');
  await c.settled();
  const card = page
    .getByRole('region', { name: 'Roles', exact: true })
    .getByRole('article', { name: roleName, exact: true });
  await card.getByRole('row').filter({ hasText: clinician }).filter({ hasText: 'Holds the role' }).waitFor();
  const policyRow = page
    .getByRole('region', { name: 'Escalation policies', exact: true })
    .getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: department, exact: true }) });
  await policyRow.getByText(roleName, { exact: true }).waitFor();
  const controls = await page.getByRole('main').locator('button, input, select, textarea').count();
  if (controls !== 0) {
    throw new Error(`an auditor is shown ${controls} control(s) on Roles & escalation`);
  }
  await c.axe('roles-auditor');
  return { controls };
}

async function deactivate(c) {
  const page = c.page;
  const clinician = need('CLINICIAN_NAME');
  await c.signIn();
  await c.goTo('People');
  await page.getByLabel('Search by name or department').fill(clinician);
  await page.getByRole('link', { name: clinician, exact: true }).click();
  await c.heading(clinician);
  await page.getByRole('region', { name: 'Status' }).getByRole('button', { name: 'Deactivate', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Deactivate', exact: true }).click();
  await page.getByRole('status').filter({ hasText: `${clinician} was deactivated.` }).waitFor();
  return { deactivated: true };
}

async function verify(c) {
  await c.signIn();
  await c.goTo('Audit');
  await c.settled();
  const result = await c.verifyLog();
  return { ok: result.ok, broken_seq: result.broken_seq, message: result.message };
}

const PHASES = {
  'enroll-admin': enrollAdmin,
  review,
  retention,
  'auditor-retention': auditorRetention,
  roles,
  'auditor-roles': auditorRoles,
  deactivate,
  verify,
};

await runPhase('console.mjs', Console, PHASES);
