// Drives the Dagster UI as an operator does, in Debian's headless Chromium via playwright-core
// (no downloaded browser); called by test_operator_ui.py, prints its observations as one JSON line.
// Environment: ARCHIVER_UI_URL, ARCHIVER_UI_ARTIFACTS (screenshots), ARCHIVER_CHROMIUM,
// ARCHIVER_UI_PROFILE (fresh --user-data-dir), ARCHIVER_UI_BROKEN (a failed partition).
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');

const BASE = process.env.ARCHIVER_UI_URL;
const SHOTS = process.env.ARCHIVER_UI_ARTIFACTS;
const BROKEN = process.env.ARCHIVER_UI_BROKEN;
const RUNS = process.env.ARCHIVER_UI_RUNS.split(',');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'];

function log(message) { process.stderr.write(`[ui] ${message}\n`); }

async function shot(page, name) {
  await page.waitForTimeout(500);  // let transitions settle
  await page.screenshot({ path: path.join(SHOTS, name) });
  log(`screenshot ${name}`);
}

async function partitionCounts(page) {
  const counts = {};
  for (const name of ['Failed', 'Materialized']) {
    const label = page.getByText(new RegExp(`^${name} \\((\\d+)\\)$`)).first();
    await label.waitFor({ timeout: 90000 });
    counts[name.toLowerCase()] = Number((await label.innerText()).match(/\((\d+)\)/)[1]);
  }
  return counts;
}

async function openPartitions(page) {
  await page.goto(`${BASE}/assets/ucondb_blob?view=partitions`);
  await page.getByText(/^Materialized \(\d+\)$/).first().waitFor({ timeout: 90000 });
}

async function countOf(page, label) {
  const node = page.getByText(new RegExp(`^${label} \\((\\d+)\\)$`)).first();
  await node.waitFor({ timeout: 60000 });
  return Number((await node.innerText()).match(/\((\d+)\)/)[1]);
}

async function md5Counts(page, screenshot) {
  await page.goto(`${BASE}/assets/ucondb_blob?view=checks`);
  const check = page.getByText('md5_round_trip', { exact: true }).first();
  await check.waitFor({ timeout: 60000 });
  await check.click();
  await page.getByText('Execution history', { exact: true }).waitFor();
  await page.getByText('Partitions', { exact: true }).nth(1).click();  // the check's own tab
  const counts = { passed: await countOf(page, 'Passed'), failed: await countOf(page, 'Failed') };
  await shot(page, screenshot);
  return counts;
}

async function main() {
  const browser = await chromium.launchPersistentContext(process.env.ARCHIVER_UI_PROFILE, {
    executablePath: process.env.ARCHIVER_CHROMIUM, headless: true, args: FLAGS,
    viewport: { width: 1440, height: 900 },
  });
  const seen = {};
  try {
    const page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(60000);
    // No popup handling: the test records the "Join the Dagster community" dialog as seen
    // before the browser starts, so it never opens (closing it when it appeared raced the
    // clicks below). If it ever does open, the screenshots show it and the next click fails.

    // 1. The asset's partitions: the archived runs materialized, the broken one failed.
    await openPartitions(page);
    seen.before = await partitionCounts(page);
    await shot(page, '01-partitions-failed.png');
    await page.getByText(BROKEN, { exact: true }).first().click();
    await page.waitForTimeout(1500);
    await shot(page, '02-failed-partition-detail.png');

    // 2. The MD5 audit (Checks tab → md5_round_trip → Partitions): passed for the archived runs.
    seen.md5 = await md5Counts(page, '03-checks-md5-partitions.png');

    // 3. Backfill the failed partition from the UI: Materialize… → Failed → Launch backfill.
    await openPartitions(page);
    await page.getByRole('button', { name: /Materialize/ }).first().click();
    const dialog = page.getByRole('dialog').filter({ hasText: 'Partition selection' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Failed', exact: true }).click();
    await dialog.getByText(/^2 partitions$/).waitFor({ timeout: 30000 });
    await shot(page, '04-materialize-failed-dialog.png');
    await dialog.getByRole('button', { name: 'Launch backfill' }).click();
    await page.getByText(/backfill/i).first().waitFor();
    seen.backfill_launched = true;
    await page.goto(`${BASE}/runs`);
    await page.getByText('Backfills', { exact: true }).first().click();
    await page.getByText(/2 partitions|Backfill/).first().waitFor();
    await shot(page, '05-backfill-launched.png');

    // 4. Wait until the backfill healed the partition (the daemon launches it).
    const deadline = Date.now() + 150000;
    for (;;) {
      await openPartitions(page);
      seen.after = await partitionCounts(page);
      if (seen.after.failed === 0 && seen.after.materialized === RUNS.length) { break; }
      if (Date.now() > deadline) { throw new Error(`backfill did not heal: ${JSON.stringify(seen)}`); }
      await page.waitForTimeout(5000);
    }
    await shot(page, '06-partitions-healed.png');
    seen.md5_after = await md5Counts(page, '09-checks-md5-after-backfill.png');

    // 5. For docs/operations.md: the sensors (on/off switches) and the runs list.
    await page.goto(`${BASE}/automation`);
    await page.getByText('new_run_records').first().waitFor();
    await shot(page, '07-automation-sensors.png');
    await page.goto(`${BASE}/runs`);
    await page.getByText(/Failure|Success/).first().waitFor();
    await shot(page, '08-runs.png');

    // 6. Turn the discovery sensor off with its switch (the test checks the state over GraphQL).
    await page.goto(`${BASE}/automation`);
    // The switch of the new_run_records row: the nearest ancestor of a switch that names this
    // sensor and no other automation (rows are siblings; schedules share the list). The list
    // re-renders when the sensors' states arrive, so the switch is looked up afresh on each poll.
    await page.getByText('new_run_records', { exact: true }).first().waitFor();
    const switchState = (wantChecked) => page.waitForFunction((want) => {
      const others = ['archive_automation', 'archive_status_daily'];
      for (const input of document.querySelectorAll('[class*="formatSwitch"] input')) {
        let el = input.parentElement;
        while (el && !el.textContent.includes('new_run_records')) el = el.parentElement;
        if (el && !others.some((name) => el.textContent.includes(name))) {
          return input.checked === want ? input.closest('[class*="formatSwitch"]') : null;
        }
      }
      return null;
    }, wantChecked, { timeout: 60000 });
    // The switch renders before the sensor's state has loaded: wait until it shows RUNNING.
    const knob = (await switchState(true)).asElement();
    await knob.click();
    await switchState(false);
    seen.sensor_switched_off = true;
    await shot(page, '10-sensor-off.png');
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + '\n');
}

main().catch((error) => { log(error.stack || String(error)); process.exit(1); });
