// Drives the console in Debian's Chromium (headless) the way a person
// would: by roles, labels and button names. One phase per run:
//
//   node web/tests/console.mjs enroll-admin|review|deactivate|verify
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

  await c.goTo('People');
  const form = page.getByRole('region', { name: 'Add a person' });
  await form.getByLabel('Display name').fill(clinician);
  await form.getByLabel('Role').selectOption({ label: 'Clinician' });
  await form.getByLabel('Department').fill(need('CLINICIAN_DEPARTMENT'));
  await form.getByRole('button', { name: 'Create user' }).click();
  await c.heading(clinician);
  const match = /#\/people\/([^/]+)$/.exec(page.url());
  if (!match) {
    throw new Error(`the new user's page has no id in its address: ${page.url()}`);
  }
  const clinicianId = decodeURIComponent(match[1]);

  await page.getByRole('button', { name: 'Issue enrollment code' }).click();
  const code = await page.getByLabel('New enrollment code', { exact: true }).inputValue();
  if (!/^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/.test(code)) {
    throw new Error(`the page shows no enrollment code: ${JSON.stringify(code)}`);
  }
  await page.getByRole('img', { name: /^QR code of the enrollment code/ }).waitFor();
  return { clinician_id: clinicianId, code };
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

  await c.goTo('Roles & escalation');
  await c.axe('roles');
  await c.screenshot('roles');
  await c.goTo('Retention & holds');
  await c.axe('retention');
  await c.screenshot('retention');

  return {
    audit_rows: auditRows,
    csv: saved.csv,
    jsonl: saved.jsonl,
    verified_entries: verified.entries,
    policy_version: version,
  };
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

const PHASES = { 'enroll-admin': enrollAdmin, review, deactivate, verify };

await runPhase('console.mjs', Console, PHASES);
