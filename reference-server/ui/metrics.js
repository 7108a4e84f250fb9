// Reading raftkv's GET /metrics (Prometheus text format) for the cluster page: pure
// functions, no DOM, so a test page can check them on canned text.
'use strict';

const raftkvMetrics = (() => {
  // A sample line: name{label="value",...} value [timestamp]
  const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

  function number(text) {
    if (text === '+Inf' || text === 'Inf') return Infinity;
    if (text === '-Inf') return -Infinity;
    return Number(text);
  }

  /** Every sample of a /metrics answer: [{name, labels: {k: v}, value}]. */
  function parse(text) {
    const samples = [];
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = lineRe.exec(line);
      const value = m ? number(m[3]) : NaN;
      if (!m || (Number.isNaN(value) && m[3] !== 'NaN')) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(labelRe))
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      samples.push({ name: m[1], labels, value });
    }
    return samples;
  }

  /** The sum of the samples named `name` whose labels pass `keep`, or null if there are none. */
  function sum(samples, name, keep = () => true) {
    let total = null;
    for (const s of samples)
      if (s.name === name && keep(s.labels)) total = (total || 0) + s.value;
    return total;
  }

  /** A histogram summed over the series whose labels pass `keep`:
      {buckets: [[le, cumulative count], ...] by le, sum, count}, or null if absent. */
  function histogram(samples, name, keep = () => true) {
    const byLe = new Map();
    for (const s of samples)
      if (s.name === name + '_bucket' && keep(s.labels)) {
        const le = number(s.labels.le);
        byLe.set(le, (byLe.get(le) || 0) + s.value);
      }
    if (byLe.size === 0) return null;
    const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
    return { buckets, sum: sum(samples, name + '_sum', keep) || 0, count: sum(samples, name + '_count', keep) || 0 };
  }

  /** What `now` counted since `before` (same buckets), or null after a reset. */
  function difference(now, before) {
    if (!now || !before || now.buckets.length !== before.buckets.length) return null;
    const buckets = now.buckets.map(([le, c], k) => [le, c - before.buckets[k][1]]);
    if (buckets.some(([, c]) => c < 0)) return null;
    return { buckets, sum: now.sum - before.sum, count: now.count - before.count };
  }

  /** The q-quantile (0 < q < 1) of a histogram, interpolated within its bucket as Prometheus's
      histogram_quantile() does; null when it counted nothing. */
  function quantile(q, h) {
    if (!h || h.buckets.length === 0) return null;
    const total = h.buckets[h.buckets.length - 1][1];
    if (!(total > 0)) return null;
    const rank = q * total;
    let lower = 0, below = 0;
    for (const [le, c] of h.buckets) {
      if (c >= rank) {
        if (le === Infinity) return lower; // beyond the last finite bound: its best guess
        return lower + (le - lower) * ((rank - below) / Math.max(c - below, 1e-9));
      }
      lower = le;
      below = c;
    }
    return lower;
  }

  return { parse, sum, histogram, difference, quantile };
})();
