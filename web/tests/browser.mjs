// What the browser tests share: Debian's Chromium (headless) launched by
// playwright-core on a persistent profile (it holds the browser's device
// key between phases), with every request checked to stay on the app's
// origin, every console error and uncaught page error recorded (CSP
// violations included), axe-core run on demand and screenshots on
// request. A test script is a set of phases, one per run: the last line
// it prints is the phase's result as JSON.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export function need(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set`);
  }
  return value;
}

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class BrowserSession {
  constructor(context, page, origin) {
    this.context = context;
    this.page = page;
    this.origin = origin;
    this.problems = [];
  }

  /** Opens the browser on APP_URL's origin with PROFILE_DIR as its profile. */
  static async launch() {
    const url = new URL(need('APP_URL'));
    const context = await chromium.launchPersistentContext(need('PROFILE_DIR'), {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox'],
      acceptDownloads: true,
      viewport: { width: 1280, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const session = new this(context, page, url.origin);
    context.on('request', (request) => {
      const target = request.url();
      if (target.startsWith('data:') || target.startsWith('blob:')) {
        return;
      }
      if (new URL(target).origin !== url.origin) {
        session.problems.push(`a request went to another origin: ${target}`);
      }
    });
    page.on('websocket', (socket) => {
      const target = new URL(socket.url());
      if (target.protocol !== 'wss:' || target.host !== url.host) {
        session.problems.push(`a WebSocket went elsewhere: ${socket.url()}`);
      }
    });
    page.on('console', (message) => {
      if (message.type() === 'error') {
        session.problems.push(`console error: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => session.problems.push(`page error: ${error.message}`));
    page.setDefaultTimeout(30_000);
    return session;
  }

  /** Fails if anything went wrong behind the scenes so far. */
  check() {
    if (this.problems.length > 0) {
      throw new Error(`the page misbehaved:\n  ${this.problems.join('\n  ')}`);
    }
  }

  async open() {
    await this.page.goto(need('APP_URL'));
    await this.page.getByRole('heading', { level: 1 }).first().waitFor();
  }

  async heading(name) {
    await this.page.getByRole('heading', { level: 1, name, exact: true }).waitFor();
  }

  /** Waits until no part of the page says it is loading. */
  async settled() {
    await this.page.waitForFunction(() => document.querySelectorAll('[aria-busy="true"]').length === 0);
  }

  /** Runs axe-core on the page; fails on serious or critical violations. */
  async axe(name) {
    await this.settled();
    // Evaluated through the DevTools protocol, which the page's CSP does
    // not govern (a <script> tag would be refused, as it should be).
    await this.page.evaluate(AXE_SOURCE);
    const violations = await this.page.evaluate(async () => {
      const results = await axe.run(document);
      return results.violations.map((violation) => ({
        id: violation.id,
        impact: violation.impact,
        help: violation.help,
        nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary ?? ''}`),
      }));
    });
    const bad = violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
    for (const violation of violations) {
      const line = `axe ${name}: ${violation.impact} ${violation.id}: ${violation.help}\n    ${violation.nodes.join('\n    ')}`;
      process.stderr.write(`${line}\n`);
    }
    if (bad.length > 0) {
      throw new Error(`${name}: ${bad.length} serious or critical accessibility violation(s): ${bad.map((v) => v.id).join(', ')}`);
    }
  }

  async screenshot(name) {
    const dir = process.env.SCREENSHOT_DIR;
    if (dir) {
      await this.settled();
      await this.page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
    }
  }

  async close() {
    await this.context.close();
  }
}

/**
 * Runs the phase named on the command line with a session of `Session`
 * (a `BrowserSession`); prints its result as the last line, or what the
 * page showed when it failed.
 */
export async function runPhase(script, Session, phases) {
  const phase = process.argv[2];
  const run = phases[phase];
  if (run === undefined) {
    process.stderr.write(`usage: node ${script} ${Object.keys(phases).join('|')}\n`);
    process.exit(2);
  }
  try {
    const session = await Session.launch();
    try {
      const result = await run(session);
      session.check();
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } catch (error) {
      const shown = await session.page
        .locator('body')
        .innerText({ timeout: 2_000 })
        .catch(() => '(the page could not be read)');
      process.stderr.write(`the page showed:\n${shown}\n`);
      if (session.problems.length > 0) {
        process.stderr.write(`and behind the scenes:\n  ${session.problems.join('\n  ')}\n`);
      }
      throw error;
    } finally {
      await session.close();
    }
  } catch (error) {
    process.stderr.write(`${script} ${phase}: ${error?.stack ?? error}\n`);
    process.exit(1);
  }
}
