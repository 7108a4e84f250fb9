// The cluster page: polls GET /cluster/status and GET /metrics on the node that served it,
// keeps the last five minutes of samples in memory, and redraws. No library.
'use strict';

const POLL_MS = 1000;
const WINDOW_MS = 5 * 60 * 1000;
const TIMEOUT_MS = 3000;
const TOKEN_KEY = 'raftkv-token';
const METRICS_RETRY_MS = 30 * 1000; // after /metrics failed: not every second
const M = raftkvMetrics;

const page = {
  polls: 0,
  samples: [],        // {t, commits, writes, reads, p50, p99}, oldest first, WINDOW_MS long
  previous: null,     // {t, commit, metrics} of the last poll, for rates
  leader: null,       // {id, term} last seen
  changes: [],        // {time, term, from, to}, newest first
  downSince: null,
  metrics: 'waiting', // 'ok', or why there are none
  metricsRetry: 0,    // performance.now() before which /metrics is not asked again
  asked: false,       // the token prompt was shown
};

const $ = (id) => document.getElementById(id);

// ---- requests -------------------------------------------------------------------------

class Unauthorized extends Error {}

async function call(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, { headers, cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (res.status === 401) throw new Unauthorized(path);
  return res;
}

function askToken() {
  page.asked = true;
  const token = window.prompt('This cluster needs a bearer token (from its --auth-tokens file; a read token ' +
                              'is enough). It is kept in this tab only.');
  if (token) sessionStorage.setItem(TOKEN_KEY, token.trim());
  return !!token;
}

// ---- polling --------------------------------------------------------------------------

async function poll() {
  const t = performance.now();
  try {
    const res = await call('/cluster/status');
    if (!res.ok) throw new Error('/cluster/status answered ' + res.status);
    const cluster = await res.json();
    const metrics = await readMetrics();
    page.polls++;
    page.downSince = null;
    setState('ok');
    record(t, cluster, metrics);
    render(cluster);
  } catch (e) {
    if (e instanceof Unauthorized) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (page.asked || !askToken()) return setState('unauthorized');
    } else {
      page.downSince = page.downSince || new Date();
      setState('down', e);
    }
  }
  setTimeout(poll, POLL_MS);
}

async function readMetrics() {
  if (performance.now() < page.metricsRetry) return null;
  try {
    const res = await call('/metrics');
    if (res.ok) {
      page.metrics = 'ok';
      return M.parse(await res.text());
    }
    page.metrics = 'GET /metrics answered ' + res.status;
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    page.metrics = 'GET /metrics failed';
  }
  page.metricsRetry = performance.now() + METRICS_RETRY_MS;
  return null;
}

// ---- what a poll says -----------------------------------------------------------------

const isKv = (l) => /kv/.test(l.route || '');
const isWrite = (l) => isKv(l) && (l.method === 'PUT' || l.method === 'DELETE');
const isRead = (l) => isKv(l) && l.method === 'GET';

/** The leader as the members report it: the one that says it leads in the highest term. */
function leaderOf(cluster) {
  let best = null;
  for (const m of cluster.members)
    if (m.status && m.status.role === 'leader' && (!best || m.status.term > best.status.term)) best = m;
  return best ? { id: best.id, term: best.status.term, status: best.status } : null;
}

const highestCommit = (cluster) =>
  Math.max(0, ...cluster.members.filter((m) => m.status).map((m) => m.status.commit_index));

function record(t, cluster, samples) {
  const leader = leaderOf(cluster);
  const commit = highestCommit(cluster);
  const hist = samples && M.histogram(samples, 'raftkv_http_request_duration_seconds', isKv);
  const now = { t, commit, writes: samples && M.sum(samples, 'raftkv_http_requests_total', isWrite),
                reads: samples && M.sum(samples, 'raftkv_http_requests_total', isRead), hist };
  const before = page.previous;
  page.previous = now;
  if (leader && (!page.leader || page.leader.id !== leader.id || page.leader.term < leader.term))
    page.changes.unshift({ time: new Date(), term: leader.term, from: page.leader && page.leader.id, to: leader.id });
  if (leader) page.leader = { id: leader.id, term: leader.term };
  page.changes.length = Math.min(page.changes.length, 50);
  if (!before) return;
  const seconds = (t - before.t) / 1000;
  const rate = (a, b) => (a == null || b == null || a < b ? null : (a - b) / seconds);
  const window = M.difference(now.hist, before.hist);
  const ms = (q) => { const v = M.quantile(q, window); return v == null ? null : v * 1000; };
  page.samples.push({ t, commits: rate(now.commit, before.commit), writes: rate(now.writes, before.writes),
                      reads: rate(now.reads, before.reads), p50: ms(0.5), p99: ms(0.99) });
  while (page.samples.length && page.samples[0].t < t - WINDOW_MS) page.samples.shift();
}

// ---- drawing --------------------------------------------------------------------------

function setState(state, error) {
  document.body.dataset.state = state;
  const banner = $('banner');
  $('token-button').hidden = state !== 'unauthorized';
  banner.className = state === 'unauthorized' ? 'warn' : '';
  banner.hidden = state === 'ok';
  if (state === 'down')
    banner.textContent = `The node serving this page (${location.host}) is not answering since ` +
      `${clock(page.downSince)} (${error.name === 'TimeoutError' ? 'timed out' : error.message}). ` +
      'Showing what it said last; retrying every second.';
  else if (state === 'unauthorized')
    banner.textContent = 'This cluster needs a bearer token to show its status.';
}

function clock(d) {
  return d.toLocaleTimeString([], { hour12: false });
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render(cluster) {
  const leader = leaderOf(cluster);
  const body = document.body;
  body.dataset.leader = leader ? leader.id : '';
  body.dataset.polls = page.polls;
  body.dataset.metrics = page.metrics;
  const down = cluster.members.filter((m) => !m.reachable).length;
  // The cluster is the one of the node serving the page; a member whose /status names
  // another (a wrong address recorded for it, a node left from an earlier cluster) is marked.
  const self = cluster.members.find((m) => m.id === cluster.id);
  const clusterId = self && self.status ? self.status.cluster_id : null;
  const foreign = (m) => !!(clusterId && m.status && m.status.cluster_id && m.status.cluster_id !== clusterId);
  const strangers = cluster.members.filter(foreign).length;
  body.dataset.cluster = clusterId || '';
  $('summary').textContent = `${cluster.members.length} members · ` +
    (leader ? `leader node ${leader.id} · term ${leader.term}` : 'no leader') +
    (down ? ` · ${down} unreachable` : '') + (strangers ? ` · ${strangers} in another cluster` : '') +
    ` · served by node ${cluster.id}` + (clusterId ? ` of cluster ${clusterId}` : '');
  $('updated').textContent = 'updated ' + clock(new Date());
  const last = page.samples[page.samples.length - 1];
  const commit = highestCommit(cluster);
  tiles([['Leader', leader ? `node ${leader.id}` : 'none', !leader],
         ['Term', leader ? leader.term : '—'],
         ['Commit index', commit.toLocaleString()],
         ['Writes/s', last && last.commits != null ? short(last.commits) : '—'],
         ['Reachable', `${cluster.members.length - down} of ${cluster.members.length}`, down > 0]]);

  const tbody = $('members').tBodies[0];
  tbody.replaceChildren();
  for (const m of cluster.members) {
    const s = m.status;
    // A learner's Raft role is follower: the page says learner.
    const role = !m.reachable ? 'unreachable' : !s ? 'unknown'
      : s.learner && s.role === 'follower' ? 'learner' : s.role;
    const row = tbody.insertRow();
    Object.assign(row.dataset, { id: m.id, role, reachable: m.reachable });
    const storageFailed = !!(s && s.storage && s.storage.state !== 'ok');
    if (s) Object.assign(row.dataset, { term: s.term, commit: s.commit_index, applied: s.applied_index,
                                        cluster: s.cluster_id || '', stateBytes: s.state_bytes,
                                        storage: s.storage ? s.storage.state : '' });
    row.className = (leader && leader.id === m.id ? 'leader ' : '') + (m.reachable ? '' : 'unreachable') +
      (foreign(m) ? ' foreign' : '');
    cell(row, `node ${m.id}` + (m.id === cluster.id ? ' (this page)' : '') +
      (foreign(m) ? ` (cluster ${m.status.cluster_id})` : ''));
    const badge = document.createElement('span');
    badge.className = 'role ' + role;
    badge.textContent = role.replace('_', '-');
    const roleCell = row.insertCell();
    roleCell.append(badge);
    if (storageFailed) {
      // The node serves what it safely can while it retries its disk (docs/server.md).
      const failed = document.createElement('span');
      failed.className = 'role storage-failed';
      failed.textContent = 'storage failed';
      failed.title = s.storage.error || '';
      roleCell.append(' ', failed);
    }
    if (s) {
      for (const v of [s.term, s.commit_index, s.applied_index, s.last_index]) cell(row, v.toLocaleString(), 'num');
      const lag = leader && m.match != null ? Math.max(0, leader.status.last_index - m.match) : null;
      cell(row, lag == null ? '—' : lag.toLocaleString(), 'num');
      stateCell(row, s);
      cell(row, m.http || '—');
    } else {
      const td = cell(row, m.error || 'no status', 'error');
      td.colSpan = 6;
      cell(row, m.http || '—');
    }
  }

  const list = $('leader-changes');
  list.replaceChildren();
  for (const c of page.changes) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = clock(c.time);
    li.append(time, c.from == null ? `node ${c.to} leads, term ${c.term} (first seen)`
                  : c.from === c.to ? `node ${c.to} elected again, term ${c.term}`
                  : `node ${c.from} → node ${c.to}, term ${c.term}`);
    list.append(li);
  }
  if (!page.changes.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'none seen yet';
    list.append(li);
  }
  drawCharts();
}

function tiles(list) {
  $('tiles').replaceChildren(...list.map(([label, value, bad]) => {
    const tile = document.createElement('div');
    tile.className = bad ? 'tile bad' : 'tile';
    const name = document.createElement('div');
    name.textContent = label;
    const number = document.createElement('b');
    number.textContent = value;
    tile.append(name, number);
    return tile;
  }));
}

function drawCharts() {
  const noMetrics = page.metrics === 'ok' ? null : `no metrics (${page.metrics})`;
  chart($('throughput-chart'), $('throughput-legend'), [
    { key: 'commits', name: 'writes/s, cluster (commit index)' },
    { key: 'writes', name: 'writes/s at this node', needsMetrics: true },
    { key: 'reads', name: 'reads/s at this node', needsMetrics: true },
  ], noMetrics, '');
  chart($('latency-chart'), $('latency-legend'), [
    { key: 'p50', name: 'p50', needsMetrics: true },
    { key: 'p99', name: 'p99', needsMetrics: true },
  ], noMetrics, ' ms');
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].find((m) => m * p >= v * 1.05) * p;
}

/** The state's size on disk, against the node's space quota (--quota-bytes) if it has one. */
function stateCell(row, s) {
  if (s.state_bytes == null) return cell(row, '—', 'num');
  const quota = s.quota_bytes || 0;
  const share = quota ? s.state_bytes / quota : 0;
  const td = cell(row, size(s.state_bytes) + (quota ? ` · ${Math.floor(share * 100)}%` : ''),
                  'num' + (share >= 1 ? ' over' : share >= 0.8 ? ' near' : ''));
  td.title = quota ? `${s.state_bytes.toLocaleString()} bytes of a ${size(quota)} quota`
                   : `${s.state_bytes.toLocaleString()} bytes, no quota`;
  return td;
}

/** Bytes in binary units: 0 B, 512 B, 1.5 KiB, 18 MiB, 8 GiB. */
function size(v) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; ++u; }
  return (u === 0 || v >= 10 ? Math.round(v) : v.toFixed(1)) + ' ' + units[u];
}

function short(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + 'k';
  return v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

/** Draws `series` (keys of page.samples) over the last five minutes into `el`. */
function chart(el, legend, series, noMetrics, unit) {
  const { width: w, height: h } = el.getBoundingClientRect();
  const pad = { l: 44, r: 10, t: 10, b: 20 };
  const end = performance.now();
  const x = (t) => pad.l + ((t - (end - WINDOW_MS)) / WINDOW_MS) * (w - pad.l - pad.r);
  const shown = series.filter((s) => !(s.needsMetrics && noMetrics));
  const values = page.samples.flatMap((p) => shown.map((s) => p[s.key])).filter((v) => v != null);
  const top = niceCeiling(Math.max(0, ...values));
  const y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
  el.setAttribute('viewBox', `0 0 ${w} ${h}`);
  el.replaceChildren();
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    el.append(svg('line', { class: 'grid', x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }),
              svg('text', { class: 'axis', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, short(v)));
  }
  for (let min = 5; min >= 0; min--)
    el.append(svg('text', { class: 'axis', x: x(end - min * 60000), y: h - 4, 'text-anchor': 'middle' },
                  min ? `-${min}m` : 'now'));
  shown.forEach((s) => {
    let d = '', pen = 'M';
    for (const p of page.samples) {
      if (p[s.key] == null) { pen = 'M'; continue; }
      d += `${pen}${x(p.t).toFixed(1)},${y(p[s.key]).toFixed(1)}`;
      pen = 'L';
    }
    if (d) el.append(svg('path', { class: `line s${series.indexOf(s)}`, d }));
  });
  const message = !shown.length ? noMetrics : !values.length ? 'waiting for data…' : null;
  if (message)
    el.append(svg('text', { class: 'nodata', x: w / 2, y: h / 2, 'text-anchor': 'middle' }, message));

  legend.replaceChildren();
  const last = page.samples[page.samples.length - 1] || {};
  for (const s of series) {
    const item = document.createElement('span');
    const swatch = document.createElement('span');
    swatch.className = `swatch s${series.indexOf(s)}`;
    const value = document.createElement('b');
    value.textContent = s.needsMetrics && noMetrics ? 'no metrics'
                      : last[s.key] == null ? '—' : short(last[s.key]) + unit;
    item.append(swatch, s.name + ' ', value);
    legend.append(item);
  }
}

$('token-button').addEventListener('click', () => {
  if (askToken()) { setState('loading'); poll(); }
});
poll();
