import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChromium, launchChromium, NO_CHROMIUM, packagedChromium } from './browser-support.js';

describe('the browser tests’ Chromium', () => {
  let dir = '';
  let executable = '';
  let plain = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'billfold-find-chromium-'));
    executable = join(dir, 'chromium');
    plain = join(dir, 'not-executable');
    await writeFile(executable, '#!/bin/sh\n');
    await chmod(executable, 0o755);
    await writeFile(plain, '');
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  const none = () => Promise.resolve({ missing: 'none here' });

  it('is the CHROMIUM_PATH binary before any other', async () => {
    await expect(
      findChromium({ env: { CHROMIUM_PATH: executable }, systemPaths: ['/bin/sh'], packaged: none }),
    ).resolves.toBe(executable);
  });

  it('fails, saying how to get one, when CHROMIUM_PATH names no executable, even with a system one', async () => {
    await expect(
      findChromium({ env: { CHROMIUM_PATH: plain }, systemPaths: [executable], packaged: none }),
    ).rejects.toThrow(`CHROMIUM_PATH=${plain} is not an executable file. ${NO_CHROMIUM}`);
  });

  it('is the system’s when CHROMIUM_PATH is unset, before the packaged one', async () => {
    await expect(
      findChromium({
        env: {},
        systemPaths: [join(dir, 'absent'), plain, executable],
        packaged: () => Promise.resolve({ path: '/packaged' }),
      }),
    ).resolves.toBe(executable);
  });

  it('is the packaged one when the system has none', async () => {
    await expect(
      findChromium({ env: {}, systemPaths: [], packaged: () => Promise.resolve({ path: '/packaged' }) }),
    ).resolves.toBe('/packaged');
  });

  it('fails with one sentence on how to get one when there is none at all', async () => {
    await expect(findChromium({ env: {}, systemPaths: [], packaged: none })).rejects.toThrow(
      `${NO_CHROMIUM} (none here.)`,
    );
    await expect(launchChromium({ env: {}, systemPaths: [], packaged: none })).rejects.toThrow(NO_CHROMIUM);
  });

  it('comes with npm install: @sparticuz/chromium’s binary unpacks once, and renders a page here', async () => {
    const [first, second] = await Promise.all([packagedChromium(), packagedChromium()]);
    expect(first).toEqual(second);
    if (!('path' in first)) throw new Error(first.missing);
    const browser = await launchChromium({
      env: {},
      systemPaths: [],
      packaged: () => Promise.resolve(first),
    });
    try {
      const page = await browser.newPage();
      await page.setContent('<h1>billfold</h1>');
      expect(await page.textContent('h1')).toBe('billfold');
    } finally {
      await browser.close();
    }
  }, 120_000);
});
