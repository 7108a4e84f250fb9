// Drives the cluster page (GET /ui) in Chromium for a while and checks it by hand, beyond
// what e2e_ui_test's --dump-dom can: the page in real time, its charts filling, and no
// console error (a Content-Security-Policy violation shows as one). Not part of CTest.
//
//   npm install --prefix test/ui                       # puppeteer-core, into test/ui/node_modules
//   node test/ui/drive.mjs http://127.0.0.1:8081/ui --seconds 120 --screenshot docs/images/cluster-page.png
//
// Options: --seconds N (how long the page runs, default 15), --screenshot FILE (a PNG of
// the page at the end), --width W --height H (the window, default 1280x860), --token T
// (the answer to the page's token prompt, for --auth-tokens), --chromium PATH
// (default /usr/bin/chromium). Exits 1 with the reasons when a check fails.
import puppeteer from 'puppeteer-core';

const args = process.argv.slice(2);
const url = args.find((a) => !a.startsWith('--') && !args[args.indexOf(a) - 1]?.startsWith('--'));
const option = (name, fallback) => {
  const k = args.indexOf('--' + name);
  return k >= 0 ? args[k + 1] : fallback;
};
if (!url) {
  console.error('usage: node drive.mjs URL [--seconds N] [--screenshot FILE] [--width W] [--height H] [--token T]');
  process.exit(2);
}
const seconds = Number(option('seconds', 15));
const width = Number(option('width', 1280)), height = Number(option('height', 860));

const browser = await puppeteer.launch({
  executablePath: option('chromium', '/usr/bin/chromium'),
  args: ['--no-sandbox', '--disable-gpu'],
  defaultViewport: { width, height },
});
const problems = [];
try {
  const page = await browser.newPage();
  // The page asks for a token when its requests are answered 401.
  const token = option('token');
  let prompts = 0;
  page.on('dialog', (d) => (++prompts, token ? d.accept(token) : d.dismiss()));
  // Expected errors: a 404 from /metrics on a server without it (the page says "no
  // metrics"), and with --token the 401 that makes the page ask for one.
  page.on('console', (m) => {
    const expected = (m.location().url || '').endsWith('/metrics') || (token && m.text().includes('401'));
    if (m.type() === 'error' && !expected)
      problems.push('console: ' + m.text() + ' ' + (m.location().url || ''));
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url, { waitUntil: 'load' });
  await new Promise((done) => setTimeout(done, seconds * 1000));

  const shown = await page.evaluate(() => ({
    state: document.body.dataset.state,
    leader: document.body.dataset.leader,
    polls: Number(document.body.dataset.polls),
    summary: document.getElementById('summary').textContent,
    members: [...document.querySelectorAll('#members tbody tr')].map((r) => ({ ...r.dataset })),
    changes: [...document.querySelectorAll('#leader-changes li')].map((li) => li.textContent),
    lines: document.querySelectorAll('#throughput-chart path').length,
    legend: document.getElementById('throughput-legend').textContent,
    latency: document.getElementById('latency-legend').textContent,
  }));
  shown.prompts = prompts;
  console.log(JSON.stringify(shown, null, 2));
  if (shown.state !== 'ok') problems.push(`the page is in state ${shown.state}`);
  if (!(shown.polls >= seconds / 2)) problems.push(`only ${shown.polls} polls in ${seconds} s`);
  if (!shown.leader) problems.push('no leader shown');
  if (shown.members.length === 0) problems.push('no members shown');
  if (shown.lines === 0) problems.push('the throughput chart has no line');
  if (shown.changes.length === 0) problems.push('no leader change listed (the first leader seen is one)');

  const file = option('screenshot');
  if (file) {
    await page.screenshot({ path: file });
    console.log('screenshot: ' + file);
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error('FAILED:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log('ok');
