// Drives the clinicians' web app in Debian's Chromium (headless) the way a
// clinician would: by roles, labels and button names, with MLS running in
// the page against colleagues on the CLI. Phases:
//
//   node web/tests/client.mjs talk|reload
//
// `talk` enrolls the browser, protects its messages with a passphrase,
// starts a thread with a colleague and sends MARKER; then it stops at
// steps (prints `STEP NAME JSON`, waits for a line on standard input) so
// that the test can act with the CLI while the page stays open: `sent`
// (the colleague reads and answers), `added` (a third clinician was added
// and greeted), `removed` (they were removed and the thread went on),
// `recalled` (a message sent, then recalled), `attached` (a picture sent
// with WITH_PICTURE, previewed here, its bytes written to OUT_DIR if set;
// then the colleague sends BEN_FILE_NAME with BEN_FILE_TEXT from the CLI,
// which the page downloads, decrypts and must find to have the SHA-256
// BEN_FILE_SHA256), `lifespan` (in a new thread, SHORT_SUBJECT, messages
// set to disappear after 30 seconds: EPHEMERAL, sent after, goes from the
// page, a message sent before stays; then the colleague turns it off from
// the CLI), `urgent` (a new thread, ROLE_SUBJECT, started with an on-call
// role: EMPTY_ROLE, which nobody holds, is refused in words, and ROLE_NAME,
// which the colleague holds, brings him in; URGENT sent there as urgent,
// marked so, with no "Acknowledge" for its sender; then the colleague
// acknowledges it from the CLI, and the page shows it live, under the
// message and in the thread's urgent messages).
// `reload` signs in again in a new browser run, unlocks the messages with
// the passphrase (a wrong one first), finds what came meanwhile (AWAY)
// counted unread, and the history, reads a thread the colleague started
// and changed on the CLI and answers there, is refused a second tab, reads the
// app's IndexedDB raw, locks and unlocks, and finally signs out erasing
// the messages.
//
// Inputs come from the environment (APP_URL, PROFILE_DIR, CHROMIUM, and
// CODE, PASSPHRASE, SUBJECT, MARKER, COLLEAGUE, THIRD, REPLY,
// AFTER_REMOVAL, TO_RECALL, WITH_PICTURE, BEN_FILE_NAME, BEN_FILE_TEXT,
// BEN_FILE_SHA256, SHORT_SUBJECT, EPHEMERAL, ROLE_SUBJECT, ROLE_NAME,
// EMPTY_ROLE, URGENT, AWAY, SECOND_SUBJECT,
// FROM_BEN, FROM_CAL, TO_BEN, SCREENSHOT_DIR, OUT_DIR); every phase fails on a request to another
// origin, a console error or an uncaught page error (browser.mjs), and on
// any serious or critical axe-core violation of a screen it visits.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { deflateSync } from 'node:zlib';

import { BrowserSession, need, runPhase } from './browser.mjs';

const lines = createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', () => waiting.shift()?.());

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) {
    c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A PNG of `size` × `size` pixels (RGB), a gradient: a picture to send. */
function png(size) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < size; y += 1) {
    rows.push(0); // no filter
    for (let x = 0; x < size; x += 1) {
      rows.push((x * 255) / (size - 1), (y * 255) / (size - 1), 128);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.from(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Reports a step and waits until the test says go on. */
function step(name, report = {}) {
  const going = new Promise((resolve) => waiting.push(resolve));
  process.stdout.write(`STEP ${name} ${JSON.stringify(report)}\n`);
  return going;
}

class Client extends BrowserSession {
  messages() {
    return this.page.locator('ol.messages > li');
  }

  /** Waits for a message of this kind holding `text`. */
  async message(kind, text, timeout = 30_000) {
    const item = this.messages().filter({ hasText: text }).and(this.page.locator(`[data-kind="${kind}"]`));
    await item.first().waitFor({ timeout });
    return item.first();
  }

  async send(text) {
    const box = this.page.getByLabel('Message', { exact: true });
    await box.fill(text);
    await this.page.getByRole('button', { name: 'Send', exact: true }).click();
    // Sent: the box is emptied; refused: it keeps the text and says why.
    await this.page.waitForFunction(
      () => document.querySelector('#compose-text')?.value === '' || document.querySelector('.compose [role="alert"]'),
    );
    const refused = this.page.locator('.compose [role="alert"]');
    if ((await refused.count()) > 0) {
      throw new Error(`"${text}" was not sent: ${await refused.innerText()}`);
    }
    await this.message('text', text);
  }

  members() {
    return this.page.getByRole('region', { name: 'Members' });
  }

  /** Searches `label`'s directory search for `name` and adds them. */
  async addFrom(scope, label, name) {
    await scope.getByLabel(label, { exact: true }).fill(name);
    await scope.getByRole('button', { name: 'Search', exact: true }).click();
    const found = scope.getByRole('list', { name: /^Colleagues matching/ }).getByRole('listitem').filter({ hasText: name });
    await found.getByRole('button', { name: 'Add', exact: true }).click();
  }

  /** Chooses the on-call role named `name` on the new-thread page. */
  async chooseRole(name) {
    const select = this.page.getByLabel('Role', { exact: true });
    const value = await select.locator('option').filter({ hasText: name }).getAttribute('value');
    await select.selectOption(value);
  }

  /** The thread's id, from the page's address. */
  threadId() {
    const match = /#\/threads\/([0-9a-f]{32})$/.exec(this.page.url());
    if (!match) {
      throw new Error(`the conversation's address names no thread: ${this.page.url()}`);
    }
    return match[1];
  }
}

async function talk(c) {
  const page = c.page;
  const subject = need('SUBJECT');
  const colleague = need('COLLEAGUE');
  const third = need('THIRD');

  // Enroll with the code, keep the audit key, protect the messages.
  await c.open();
  await c.heading('Enroll this browser');
  await c.axe('enroll');
  await c.screenshot('enroll');
  await page.getByLabel('Enrollment code').fill(need('CODE'));
  await page.getByRole('button', { name: 'Enroll this browser' }).click();
  await c.heading('Pin the audit key');
  await page.getByRole('button', { name: 'Pin this audit key' }).click();
  await c.heading('Protect this browser’s messages');
  await c.axe('protect');
  await c.screenshot('protect');
  await page.getByLabel('Passphrase', { exact: true }).fill(need('PASSPHRASE'));
  await page.getByLabel('Repeat the passphrase', { exact: true }).fill(need('PASSPHRASE'));
  await page.getByRole('button', { name: 'Protect my messages' }).click();
  await c.heading('Threads');
  await page.getByRole('status').filter({ hasText: /^Live$/ }).waitFor();

  // A new thread with a colleague found in the directory.
  await page.getByRole('link', { name: 'New thread', exact: true }).first().click();
  await c.heading('New thread');
  await page.getByLabel('Subject', { exact: true }).fill(subject);
  await c.addFrom(page.getByRole('region', { name: 'Colleagues' }), 'Find colleagues', colleague);
  await page.getByRole('region', { name: 'In this thread' }).getByText(colleague).waitFor();
  await c.axe('new-thread');
  await c.screenshot('new-thread');
  await page.getByRole('button', { name: 'Start thread', exact: true }).click();
  await c.heading(subject);
  const threadId = c.threadId();
  await c.send(need('MARKER'));
  await step('sent', { thread_id: threadId });

  // The colleague's answer arrives live: no reload, no navigation.
  await c.message('text', need('REPLY'), 60_000);
  // Their CLI read it: a read receipt under the first message.
  await c
    .messages()
    .filter({ hasText: need('MARKER') })
    .locator('p.receipt')
    .filter({ hasText: `Read by ${colleague}` })
    .waitFor({ timeout: 60_000 });

  // A third clinician joins, is greeted, and is removed again.
  await c.addFrom(c.members(), 'Add a colleague', third);
  await c.message('added', third);
  await c.send(`Welcome, ${third}`);
  await step('added');
  await c.members().getByRole('listitem').filter({ hasText: third }).getByRole('button', { name: 'Remove', exact: true }).first().click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove', exact: true }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await c.message('removed', third);
  await c.send(need('AFTER_REMOVAL'));
  await step('removed');

  // A message sent, then recalled: gone here, and for everyone.
  await c.send(need('TO_RECALL'));
  const toRecall = c.messages().filter({ hasText: need('TO_RECALL') });
  await toRecall.getByRole('button', { name: 'Recall', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Recall', exact: true }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await c.messages().and(page.locator('[data-kind="recalled"]')).first().waitFor();
  if ((await c.messages().filter({ hasText: need('TO_RECALL') }).count()) > 0) {
    throw new Error('the recalled message is still shown');
  }
  await step('recalled');

  // A picture with a line, sent from here: encrypted in the page, shown
  // again from the server's ciphertext, decrypted (the preview), and read
  // by the colleague's CLI, which must get these very bytes.
  const picture = png(16);
  const pictureName = 'ecg-strip.png';
  let picturePath = null;
  if (process.env.OUT_DIR) {
    picturePath = join(process.env.OUT_DIR, pictureName);
    writeFileSync(picturePath, picture);
  }
  await page.getByLabel('Attach files', { exact: true }).setInputFiles({ name: pictureName, mimeType: 'image/png', buffer: picture });
  await page.getByRole('list', { name: 'Files to send' }).getByText(pictureName).waitFor();
  await c.send(need('WITH_PICTURE'));
  const withPicture = c.messages().filter({ hasText: need('WITH_PICTURE') });
  await withPicture.getByText(`(image/png, ${picture.length} bytes)`).waitFor();
  const preview = withPicture.getByRole('img', { name: `Preview of ${pictureName}`, exact: true });
  await preview.waitFor();
  await page.waitForFunction((image) => image.complete && image.naturalWidth === 16, await preview.elementHandle());
  await step('attached', { name: pictureName, sha256: sha256(picture), size: picture.length, path: picturePath });

  // The colleague's file, sent from the CLI, downloaded here: decrypted in
  // the page and saved with its name and exactly its bytes.
  const fromBen = await c.message('text', need('BEN_FILE_TEXT'), 60_000);
  const benFile = fromBen.getByRole('listitem').filter({ hasText: need('BEN_FILE_NAME') });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    benFile.getByRole('button', { name: 'Download', exact: true }).click(),
  ]);
  if (download.suggestedFilename() !== need('BEN_FILE_NAME')) {
    throw new Error(`the download is named ${download.suggestedFilename()}, not ${need('BEN_FILE_NAME')}`);
  }
  const saved = readFileSync(await download.path());
  if (sha256(saved) !== need('BEN_FILE_SHA256')) {
    throw new Error(`the file downloaded (${saved.length} bytes) is not the one sent: SHA-256 ${sha256(saved)}`);
  }
  const downloaded = { name: download.suggestedFilename(), sha256: sha256(saved), size: saved.length };

  await c.axe('conversation');
  await c.screenshot('conversation');
  await c.members().getByRole('listitem').filter({ hasText: colleague }).getByRole('button', { name: 'Safety number', exact: true }).click();
  const number = (await page.getByTestId('safety-number').innerText()).trim();
  await c.axe('safety-number');
  await c.screenshot('safety-number');
  await page.getByRole('dialog').getByRole('button', { name: 'Close', exact: true }).click();

  // Disappearing messages, in a thread of their own (the first thread's
  // history is read again after the reload): set to 30 seconds, a message
  // sent after goes from the page without a reload, while the notice of
  // the change and a message sent before stay; the colleague turns it off
  // from the CLI.
  const shortSubject = need('SHORT_SUBJECT');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Threads', exact: true }).click();
  await c.heading('Threads');
  await page.getByRole('link', { name: 'New thread', exact: true }).first().click();
  await c.heading('New thread');
  await page.getByLabel('Subject', { exact: true }).fill(shortSubject);
  await c.addFrom(page.getByRole('region', { name: 'Colleagues' }), 'Find colleagues', colleague);
  await page.getByRole('region', { name: 'In this thread' }).getByText(colleague).waitFor();
  await page.getByRole('button', { name: 'Start thread', exact: true }).click();
  await c.heading(shortSubject);
  const shortThread = c.threadId();
  const before = 'Said before the lifespan: it stays';
  await c.send(before);
  const lifespan = page.getByRole('region', { name: 'Disappearing messages' });
  await lifespan.getByLabel('Messages disappear after', { exact: true }).selectOption({ label: '30 seconds' });
  await lifespan.getByRole('button', { name: 'Set', exact: true }).click();
  await c.message('lifespan', 'Dr. Ana Alvarez set messages to disappear after 30 seconds');
  await page.getByTestId('lifespan-note').filter({ hasText: 'Messages disappear after 30 seconds' }).waitFor();
  await c.send(need('EPHEMERAL'));
  await c.axe('lifespan');
  await c.screenshot('lifespan');
  await c.messages().filter({ hasText: need('EPHEMERAL') }).waitFor({ state: 'detached', timeout: 60_000 });
  // A lifespan applies to what is written while it is in force.
  await c.messages().filter({ hasText: before }).waitFor();
  await c.message('lifespan', 'set messages to disappear after 30 seconds');
  await step('lifespan', { thread_id: shortThread });
  await c.message('lifespan', `${colleague} turned off disappearing messages`, 60_000);
  await page.getByTestId('lifespan-note').waitFor({ state: 'detached' });

  // A thread with whoever holds an on-call role now. A role nobody holds
  // is refused in words; the one the colleague holds brings him in.
  const roleSubject = need('ROLE_SUBJECT');
  const emptyRole = need('EMPTY_ROLE');
  await page.getByRole('link', { name: 'New thread', exact: true }).first().click();
  await c.heading('New thread');
  await page.getByLabel('Subject', { exact: true }).fill(roleSubject);
  const roles = page.getByRole('region', { name: 'Start with a role', exact: true });
  await c.chooseRole(emptyRole);
  await roles.locator('p.role-shifts').filter({ hasText: `Nobody holds ${emptyRole} right now` }).waitFor();
  await page.getByRole('button', { name: 'Start thread', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: `Nobody holds ${emptyRole} right now` }).waitFor();
  await c.chooseRole(need('ROLE_NAME'));
  await roles.locator('p.role-shifts').filter({ hasText: `Held now by ${colleague}` }).waitFor();
  await c.axe('new-thread-role');
  await page.getByRole('button', { name: 'Start thread', exact: true }).click();
  await c.heading(roleSubject);
  const roleThread = c.threadId();
  await c.members().getByRole('listitem').filter({ hasText: colleague }).waitFor();

  // An urgent message: marked so, its sender not asked to acknowledge it,
  // and the switch off again for the next message.
  await page.getByLabel('Urgent', { exact: true }).check();
  await c.send(need('URGENT'));
  const urgent = c.messages().filter({ hasText: need('URGENT') });
  await urgent.locator('.urgent-badge').filter({ hasText: 'URGENT' }).waitFor();
  await urgent.locator('.urgent-status').filter({ hasText: 'Not acknowledged yet' }).waitFor();
  if ((await urgent.getByRole('button', { name: 'Acknowledge', exact: true }).count()) > 0) {
    throw new Error('the sender of an urgent message is asked to acknowledge it');
  }
  if (await page.getByLabel('Urgent', { exact: true }).isChecked()) {
    throw new Error('the Urgent switch stayed on after the message went');
  }
  await c.axe('urgent');
  await c.screenshot('urgent');
  await step('urgent', { thread_id: roleThread });
  // The colleague acknowledged it from the CLI: shown live, with his name.
  const acknowledged = `Acknowledged by ${colleague}`;
  await urgent.locator('.urgent-status').filter({ hasText: acknowledged }).waitFor({ timeout: 60_000 });
  await page.getByRole('region', { name: 'Urgent messages', exact: true }).locator('.urgent-acks').filter({ hasText: acknowledged }).waitFor();

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Threads', exact: true }).click();
  await c.heading('Threads');
  await page.getByRole('link', { name: subject, exact: true }).waitFor();
  await c.axe('threads');
  return { thread_id: threadId, safety_number: number, downloaded, short_thread_id: shortThread, role_thread_id: roleThread };
}

async function reload(c) {
  const page = c.page;
  const subject = need('SUBJECT');
  await c.open();
  await c.heading('Sign in to Curbside');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await c.heading('Unlock your messages');
  await c.axe('unlock');
  await c.screenshot('unlock');
  await page.getByLabel('Passphrase', { exact: true }).fill(`${need('PASSPHRASE')} and a typo`);
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
  await page.getByText('That passphrase does not unlock').waitFor();
  await page.getByLabel('Passphrase', { exact: true }).fill(need('PASSPHRASE'));
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
  await c.heading('Threads');
  // What the colleague wrote while this browser was away: caught up, and
  // counted unread until the thread is opened.
  await page.getByRole('row').filter({ hasText: subject }).filter({ hasText: '1 unread' }).waitFor();
  // Two messages from others in the thread the colleague started: its
  // subject and the changes to it are not counted.
  await page.getByRole('row').filter({ hasText: need('SECOND_SUBJECT') }).filter({ hasText: '2 unread' }).waitFor();
  await c.axe('threads');
  await c.screenshot('threads');
  await page.getByRole('link', { name: subject, exact: true }).click();
  await c.heading(subject);
  await c.message('text', need('AWAY'));
  // The history from before the reload: MLS gives no key to decrypt it
  // again, so it can only have come from the encrypted local store.
  const history = [];
  for (const text of [need('MARKER'), need('REPLY'), need('AFTER_REMOVAL')]) {
    await c.message('text', text);
    history.push(text);
  }

  // A thread the colleague started on the CLI (OpenMLS's welcome), in
  // which he added a third clinician and removed him (OpenMLS's commits).
  const secondSubject = need('SECOND_SUBJECT');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Threads', exact: true }).click();
  await page.getByRole('link', { name: secondSubject, exact: true }).click();
  await c.heading(secondSubject);
  await c.message('text', need('FROM_BEN'));
  await c.message('added', 'Dr. Cal Chen');
  await c.message('text', need('FROM_CAL'));
  await c.message('removed', 'Dr. Cal Chen');
  await c.send(need('TO_BEN'));
  await page.getByRole('link', { name: 'All threads' }).click();
  await page.getByRole('link', { name: subject, exact: true }).click();
  await c.heading(subject);

  // A second tab may not open the same messages beside this one (the two
  // would spend the same keys): it says where they are open.
  const second = await c.context.newPage();
  await second.goto(need('APP_URL'));
  await second.getByRole('button', { name: 'Sign in', exact: true }).click();
  await second.getByLabel('Passphrase', { exact: true }).fill(need('PASSPHRASE'));
  await second.getByRole('button', { name: 'Unlock', exact: true }).click();
  await second.getByText('Curbside is open in another tab of this browser').waitFor();
  await second.close();

  // The app's IndexedDB, read raw: every store's keys and values, bytes as
  // they are kept.
  const raw = await page.evaluate(async () => {
    const open = (name) =>
      new Promise((resolve, reject) => {
        const request = indexedDB.open(name);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    const all = (store, what) =>
      new Promise((resolve, reject) => {
        const request = what === 'keys' ? store.getAllKeys() : store.getAll();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    const text = (value) => {
      if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
        return Array.from(new Uint8Array(value), (byte) => String.fromCharCode(byte)).join('');
      }
      if (Array.isArray(value)) {
        return value.map(text).join('\u0000');
      }
      if (value !== null && typeof value === 'object') {
        return Object.entries(value)
          .map(([key, inner]) => `${key}=${text(inner)}`)
          .join('\u0000');
      }
      return String(value);
    };
    let dump = '';
    let records = 0;
    for (const { name } of await indexedDB.databases()) {
      const db = await open(name);
      for (const storeName of db.objectStoreNames) {
        const store = db.transaction(storeName).objectStore(storeName);
        const [keys, values] = [await all(store, 'keys'), await all(store, 'values')];
        records += values.length;
        dump += `${text(keys)}\u0000${text(values)}\u0000`;
      }
      db.close();
    }
    return { dump, records };
  });

  // Locked, the page holds no message; unlocked again, it shows them.
  await page.getByRole('button', { name: 'Lock', exact: true }).click();
  await c.heading('Unlock your messages');
  const lockedText = await page.locator('body').innerText();
  if (lockedText.includes(need('MARKER'))) {
    throw new Error('the locked page still shows a message');
  }
  await page.getByLabel('Passphrase', { exact: true }).fill(need('PASSPHRASE'));
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
  await c.heading(subject);
  await c.message('text', need('MARKER'));

  // Signing out and erasing leaves nothing of the messages in the browser.
  await page.getByRole('button', { name: 'Sign out and erase this browser’s messages', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Erase and sign out', exact: true }).click();
  await c.heading('Sign in to Curbside');
  const left = await page.evaluate(async () => (await indexedDB.databases()).map((db) => db.name));

  return {
    history,
    records: raw.records,
    raw_bytes: raw.dump.length,
    marker_in_indexeddb: raw.dump.includes(need('MARKER')) || raw.dump.includes(need('REPLY')),
    databases_after_erase: left,
  };
}

await runPhase('client.mjs', Client, { talk, reload });
lines.close();
