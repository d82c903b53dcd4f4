// Inline SVG charts built with DOM APIs (CSP forbids inline styles, so colours are
// SVG presentation attributes and layout comes from style.css classes).
// Charts are drawn at the container's real pixel width, so text stays legible on a
// phone, and redrawn when the window is resized.
import { h, s, clear } from './dom.js';
import { niceTicks } from './stats.js';

// Okabe–Ito based, distinguishable for common colour-vision deficiencies.
export const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#7F3C8D', '#555555', '#A6761D', '#1B7837'];
export const color = (i) => COLORS[i % COLORS.length];

let chartCounter = 0;

/**
 * Draw `draw(width)` into `container` now and again whenever its width changes.
 * `signal` (the view's AbortSignal) removes the resize listener on navigation.
 */
export function mountChart(container, draw, signal) {
  let lastWidth = -1;
  const render = () => {
    const width = Math.max(260, Math.floor(container.clientWidth || 600));
    if (width === lastWidth) return;
    lastWidth = width;
    clear(container);
    container.append(draw(width));
  };
  render();
  // Stop listening when the view changes (signal) or the chart is replaced (refresh).
  const own = new AbortController();
  if (signal) signal.addEventListener('abort', () => own.abort(), { once: true });
  let timer = null;
  window.addEventListener('resize', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!container.isConnected) { own.abort(); return; }
      render();
    }, 120);
  }, { signal: own.signal });
}

function svgRoot(width, height, title, desc, testid) {
  chartCounter += 1;
  const tid = `chart-title-${chartCounter}`;
  const did = `chart-desc-${chartCounter}`;
  return s('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-labelledby': `${tid} ${did}`, class: 'chart', 'data-testid': testid,
  }, s('title', { id: tid, text: title }), s('desc', { id: did, text: desc || '' }));
}

const linear = (d0, d1, r0, r1) => (v) => (d1 === d0 ? (r0 + r1) / 2 : r0 + ((v - d0) / (d1 - d0)) * (r1 - r0));

/**
 * How many x intervals to label: as many labels as fit side by side at their real width
 * (≈6.5 px a character at 11.5 px), so dates like "Nov 24, 07:00 AM" never collide on a phone.
 */
function xTickCount(plotWidth, sampleLabel) {
  const labelWidth = Math.max(36, String(sampleLabel).length * 6.5) + 16;
  return Math.max(1, Math.min(6, Math.floor(plotWidth / labelWidth) - 1));
}

/** Evenly spread time ticks, at most `count`, chosen by pixel room. */
function timeTicks(min, max, count) {
  if (!(max > min)) return [min];
  const out = [];
  for (let i = 0; i <= count; i++) out.push(min + ((max - min) * i) / count);
  return out;
}

/** Axes, grid and labels shared by the line and area charts. */
function axes(g, { x, y, xTicks, yTicks, xFormat, yFormat, m, width, height, yLabel, hideY = false }) {
  for (const t of yTicks) {
    const py = y(t);
    g.append(s('line', { x1: m.left, x2: width - m.right, y1: py, y2: py, class: 'grid' }));
    if (hideY) continue;
    g.append(s('text', { x: m.left - 6, y: py, class: 'tick tick-y', 'text-anchor': 'end', 'dominant-baseline': 'middle', text: yFormat(t) }));
  }
  g.append(s('line', { x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom, class: 'axis' }));
  // Labels are centred on their tick, pulled inside the plot at the edges, and a label that
  // would overlap the previous one is left out (its tick mark stays).
  let prevRight = -Infinity;
  xTicks.forEach((t) => {
    const px = x(t);
    const label = xFormat(t);
    const w = String(label).length * 6.5;
    let anchor = 'middle';
    let left = px - w / 2;
    if (left < m.left - 4) { anchor = 'start'; left = px; } else if (px + w / 2 > width - m.right + 4) { anchor = 'end'; left = px - w; }
    g.append(s('line', { x1: px, x2: px, y1: height - m.bottom, y2: height - m.bottom + 4, class: 'axis' }));
    if (left < prevRight + 8) return;
    prevRight = left + w;
    g.append(s('text', { x: px, y: height - m.bottom + 16, class: 'tick', 'text-anchor': anchor, text: label }));
  });
  if (yLabel) {
    g.append(s('text', { x: 12, y: m.top + (height - m.top - m.bottom) / 2, class: 'axis-label', 'text-anchor': 'middle', transform: `rotate(-90 12 ${m.top + (height - m.top - m.bottom) / 2})`, text: yLabel }));
  }
}

/** HTML legend (wraps nicely on narrow screens, unlike SVG text). */
export function legend(items) {
  return h('ul', { class: 'legend', 'data-testid': 'chart-legend' }, items.map((item, i) => {
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.backgroundColor = item.color || color(i); // CSSOM assignment is CSP-safe
    return h('li', null, swatch, item.name);
  }));
}

/**
 * Multi-series line chart.
 * series: [{name, color, points: [[x, y], ...]}]; xDomain/yDomain: [min, max].
 */
export function lineChart({ width, height = 260, series, xDomain, yDomain, xFormat, yFormat, xIsTime = false, title, desc, testid, yLabel, fillUnder = false, markers = true, hideY = false }) {
  const m = { top: 12, right: 16, bottom: 28, left: hideY ? (yLabel ? 24 : 12) : yLabel ? 58 : 48 };
  if (hideY) yFormat = yFormat || (() => '');
  const svg = svgRoot(width, height, title, desc, testid);
  const x = linear(xDomain[0], xDomain[1], m.left, width - m.right);
  const y = linear(yDomain[0], yDomain[1], height - m.bottom, m.top);
  const xCount = xTickCount(width - m.left - m.right, xFormat(xDomain[1]));
  const xTicks = xIsTime ? timeTicks(xDomain[0], xDomain[1], xCount) : niceTicks(xDomain[0], xDomain[1], xCount).filter((t) => t >= xDomain[0] && t <= xDomain[1]);
  const yTicks = niceTicks(yDomain[0], yDomain[1], height < 200 ? 3 : 5);
  const g = s('g');
  axes(g, { x, y, xTicks, yTicks, xFormat, yFormat, m, width, height, yLabel, hideY });
  series.forEach((ser, i) => {
    const c = ser.color || color(i);
    const pts = ser.points.filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py));
    if (!pts.length) return;
    const d = pts.map(([px, py], k) => `${k ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join('');
    if (fillUnder && pts.length > 1) {
      const base = y(yDomain[0]).toFixed(1);
      g.append(s('path', { d: `${d}L${x(pts[pts.length - 1][0]).toFixed(1)},${base}L${x(pts[0][0]).toFixed(1)},${base}Z`, fill: c, 'fill-opacity': 0.12, stroke: 'none' }));
    }
    g.append(s('path', { d, fill: 'none', stroke: c, 'stroke-width': 2, 'stroke-linejoin': 'round', class: 'series', 'data-series': ser.name }));
    if (markers && pts.length <= 60) {
      for (const [px, py] of pts) {
        g.append(s('circle', { cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: 3, fill: c },
          s('title', { text: `${ser.name}: ${yFormat(py)} at ${xFormat(px)}` })));
      }
    }
  });
  svg.append(g);
  return svg;
}

/**
 * Stacked step areas: each segment [x0, x1) has one share per series, summing to 1.
 * Used for traffic share over time (per bucket, or between simulator checkpoints).
 */
export function stackedShareChart({ width, height = 240, names, segments, xFormat, xIsTime = false, title, desc, testid }) {
  const m = { top: 12, right: 16, bottom: 28, left: 48 };
  const svg = svgRoot(width, height, title, desc, testid);
  if (!segments.length) {
    svg.setAttribute('height', 40);
    svg.setAttribute('viewBox', `0 0 ${width} 40`);
    svg.append(s('text', { x: 8, y: 24, class: 'tick', text: 'No traffic in this period.' }));
    return svg;
  }
  const xMin = segments.length ? segments[0].x0 : 0;
  const xMax = segments.length ? segments[segments.length - 1].x1 : 1;
  const x = linear(xMin, xMax, m.left, width - m.right);
  const y = linear(0, 1, height - m.bottom, m.top);
  const xCount = xTickCount(width - m.left - m.right, xFormat(xMax));
  const xTicks = xIsTime ? timeTicks(xMin, xMax, xCount) : niceTicks(xMin, xMax, xCount).filter((t) => t >= xMin && t <= xMax);
  const g = s('g');
  const areas = s('g');
  names.forEach((name, i) => {
    // Build the band of series i as a path: top edge left→right, bottom edge back.
    const top = [];
    const bottom = [];
    for (const seg of segments) {
      const below = seg.shares.slice(0, i).reduce((a, b) => a + b, 0);
      const above = below + seg.shares[i];
      top.push([x(seg.x0), y(above)], [x(seg.x1), y(above)]);
      bottom.push([x(seg.x0), y(below)], [x(seg.x1), y(below)]);
    }
    if (!top.length) return;
    const pts = top.concat(bottom.reverse());
    const d = pts.map(([px, py], k) => `${k ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('') + 'Z';
    areas.append(s('path', { d, fill: color(i), 'fill-opacity': 0.85, stroke: '#fff', 'stroke-width': 0.5, 'data-series': name },
      s('title', { text: name })));
  });
  g.append(areas);
  axes(g, { x, y, xTicks, yTicks: [0, 0.25, 0.5, 0.75, 1], xFormat, yFormat: (v) => `${Math.round(v * 100)}%`, m, width, height });
  svg.append(g);
  return svg;
}

/**
 * Heat map of a rows × cols grid of values (conversion rates); null cells are blank.
 * Colour runs from light to dark blue over the observed range.
 */
export function heatmap({ width, rows, cols, cells, format, title, desc, testid, rowTitle, colTitle }) {
  const labelW = Math.min(140, Math.max(70, Math.floor(width * 0.25)));
  const m = { top: 44, right: 8, bottom: 8, left: labelW };
  const cellW = Math.max(40, Math.floor((width - m.left - m.right) / Math.max(1, cols.length)));
  const cellH = 40;
  const w = Math.max(width, m.left + cellW * cols.length + m.right);
  const height = m.top + cellH * rows.length + m.bottom;
  const svg = svgRoot(w, height, title, desc, testid);
  const vals = cells.flat().filter((v) => Number.isFinite(v));
  const lo = vals.length ? Math.min(...vals) : 0;
  const hi = vals.length ? Math.max(...vals) : 1;
  const t = (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  // Interpolate #e8f1fa -> #08306b.
  const mix = (v) => {
    const a = [232, 241, 250];
    const b = [8, 48, 107];
    const k = t(v);
    return `rgb(${a.map((c, i) => Math.round(c + (b[i] - c) * k)).join(',')})`;
  };
  const clip = (text, px) => (text.length * 7 > px ? `${text.slice(0, Math.max(3, Math.floor(px / 7) - 1))}…` : text);
  if (colTitle) svg.append(s('text', { x: m.left, y: 14, class: 'axis-label', text: colTitle }));
  cols.forEach((c, j) => {
    svg.append(s('text', { x: m.left + cellW * j + cellW / 2, y: m.top - 8, class: 'tick', 'text-anchor': 'middle', text: clip(c, cellW - 4) }, s('title', { text: c })));
  });
  rows.forEach((r, i) => {
    svg.append(s('text', { x: m.left - 8, y: m.top + cellH * i + cellH / 2, class: 'tick', 'text-anchor': 'end', 'dominant-baseline': 'middle', text: clip(r, m.left - 12) }, s('title', { text: r })));
    cols.forEach((c, j) => {
      const v = cells[i][j];
      const has = Number.isFinite(v);
      const x0 = m.left + cellW * j;
      const y0 = m.top + cellH * i;
      svg.append(s('rect', { x: x0 + 1, y: y0 + 1, width: cellW - 2, height: cellH - 2, rx: 3, fill: has ? mix(v) : '#f3f4f6', class: 'heat-cell' },
        s('title', { text: `${r} × ${c}: ${has ? format(v) : 'no data'}` })));
      svg.append(s('text', { x: x0 + cellW / 2, y: y0 + cellH / 2, 'text-anchor': 'middle', 'dominant-baseline': 'middle', class: 'cell-label', fill: has && t(v) > 0.5 ? '#ffffff' : '#111827', text: has ? format(v) : '—' }));
    });
  });
  if (rowTitle) svg.append(s('text', { x: 4, y: 14 + 16, class: 'axis-label', text: rowTitle }));
  return svg;
}

/** Horizontal bars, one row per item, sorted by the caller. */
export function barList({ width, items, format, title, desc, testid }) {
  const rowH = 28;
  const labelW = Math.min(220, Math.floor(width * 0.4));
  const valueW = 64;
  const height = rowH * items.length + 8;
  const svg = svgRoot(width, height, title, desc, testid);
  const max = Math.max(...items.map((it) => (Number.isFinite(it.value) ? it.value : 0)), 1e-12);
  const barMax = width - labelW - valueW - 16;
  items.forEach((it, i) => {
    const y0 = 4 + i * rowH;
    const label = it.label.length * 7 > labelW - 8 ? `${it.label.slice(0, Math.floor((labelW - 8) / 7) - 1)}…` : it.label;
    svg.append(s('text', { x: labelW - 8, y: y0 + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'tick', text: label }, s('title', { text: it.label })));
    const bw = Number.isFinite(it.value) ? Math.max(1, (it.value / max) * barMax) : 0;
    svg.append(s('rect', { x: labelW, y: y0 + 5, width: bw.toFixed(1), height: rowH - 10, rx: 3, fill: it.highlight ? '#D55E00' : '#0072B2' },
      s('title', { text: `${it.label}: ${format(it.value)}` })));
    svg.append(s('text', { x: labelW + bw + 6, y: y0 + rowH / 2, 'dominant-baseline': 'middle', class: 'tick', text: format(it.value) }));
  });
  return svg;
}
