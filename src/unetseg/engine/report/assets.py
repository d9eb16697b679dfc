"""The style sheet and the script of the HTML report, inlined into the page (it loads nothing from anywhere).

The script reads the JSON blocks of the page: ``report-data`` (the table's columns and rows, the sort column, the
gallery's order and picture sizes, the rows per block of pictures) before it, and ``report-pictures-N`` (the
``data:`` URIs, a block per ``chunk`` rows) after it, at the end of the page. It renders the per-image table
(sorted by clicking a column header, filtered by a text per column: a part of the name, or ``<0.8``, ``>=0.5``,
``=3``, ``0.2..0.6`` for a number), then the gallery: its cards are added a dozen at a time as the window nears its
end (and up to any card a link names), their pictures set only when a card comes near the window, once the whole
page is read. It marks ``table-rendered`` (the table is in the page) and ``table-painted``
(after the next frame) with ``performance.mark``, for measuring.
"""

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { padding: 14px 24px 6px; border-bottom: 1px solid var(--line); background: var(--head); }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 2px 0; color: var(--muted); }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 0 24px 40px; }
section { margin-top: 22px; }
h2 { font-size: 17px; margin: 0 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 14px 0 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; }
thead th { background: var(--head); }
#per-image-table thead th { position: sticky; top: 0; z-index: 1; }
.facts td:first-child, .kv td:first-child { color: var(--muted); }
.reason { color: var(--muted); }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid var(--line); border-radius: 6px; background: #fff; max-width: 100%; height: auto; }
.chart text { font-size: 11px; fill: var(--fg); }
.chart .chart-title { font-size: 13px; font-weight: 600; }
.chart .legend { font-size: 11px; }
.chart .grid { stroke: #e6eaef; }
.chart .marker { stroke: #888; stroke-dasharray: 4 3; }
.columns { display: flex; flex-wrap: wrap; gap: 28px; }
.table-wrap { max-height: 75vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
#per-image-table { width: 100%; }
#per-image-table thead button { all: unset; cursor: pointer; font-weight: 600; white-space: nowrap; }
#per-image-table thead button:focus-visible { outline: 2px solid var(--accent); }
#per-image-table th[aria-sort=ascending] button::after { content: " \\25B2"; }
#per-image-table th[aria-sort=descending] button::after { content: " \\25BC"; }
#per-image-table thead tr.filters th { top: 27px; padding: 2px 4px; }
#per-image-table input { width: 100%; min-width: 4.5em; font: inherit; font-size: 12px; padding: 1px 4px;
                         border: 1px solid var(--line); border-radius: 4px; }
#per-image-table input.bad { border-color: #cf222e; background: #ffebe9; }
#per-image-table tbody tr:hover { background: #f3f6fa; }
#per-image-table tbody th { font-weight: normal; }
.na { color: #9aa4ae; }
.count { color: var(--muted); margin: 6px 0; }
.legend-row { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
          vertical-align: -1px; border: 1px solid #0003; }
#gallery { display: flex; flex-direction: column; gap: 14px; }
.card { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
        content-visibility: auto; contain-intrinsic-size: auto 360px; }
.card figcaption { margin-bottom: 6px; }
.card figcaption a { font-weight: 600; color: var(--accent); text-decoration: none; }
.card figcaption span { color: var(--muted); margin-left: 10px; }
.pics { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px; }
.pics div { text-align: center; color: var(--muted); font-size: 12px; }
.pics img { display: block; width: 100%; height: auto; background: #111; image-rendering: pixelated; }
pre { background: var(--head); padding: 8px; border-radius: 6px; overflow: auto; }
.note { color: var(--muted); }
"""

SCRIPT = r"""
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const cols = data.columns, rows = data.rows;
  const esc = s => String(s).replace(/[&<>"']/g,
    c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
  const show = (v, col) => v === null ? '<span class="na">\u2013</span>'
    : col.kind === "number" ? v.toFixed(4) : esc(v);
  const NUM = "(-?(?:\\d+\\.?\\d*|\\.\\d+)(?:e[-+]?\\d+)?)";
  const RANGE = new RegExp("^" + NUM + "\\s*\\.\\.\\s*" + NUM + "$", "i");
  const COMPARE = new RegExp("^(<=|>=|<|>|=)?\\s*" + NUM + "$", "i");
  const OPS = {"<": (v, x) => v < x, "<=": (v, x) => v <= x, ">": (v, x) => v > x, ">=": (v, x) => v >= x,
               "=": (v, x) => v === x};

  // a filter's test of a value: null for an empty text, undefined for one that cannot be read
  function parseFilter(text, kind) {
    text = text.trim();
    if (!text) return null;
    if (kind === "text") {
      const part = text.toLowerCase();
      return v => String(v).toLowerCase().includes(part);
    }
    let m = text.match(RANGE);
    if (m) {
      const lo = +m[1], hi = +m[2];
      return v => v !== null && v >= lo && v <= hi;
    }
    m = text.match(COMPARE);
    if (!m) return undefined;
    const op = OPS[m[1] || "="], x = +m[2];
    return v => v !== null && op(v, x);
  }

  const table = document.getElementById("per-image-table");
  if (table) {
    const body = table.tBodies[0], count = document.getElementById("row-count");
    const heads = [...table.querySelectorAll("thead tr.names th")];
    const filters = cols.map(() => null);
    let sortCol = data.sort, sortDir = 1;
    const shown = () => {
      const keep = [];
      for (let i = 0; i < rows.length; i++) {
        if (filters.every((f, c) => !f || f(rows[i][c]))) keep.push(i);
      }
      return keep.sort((a, b) => {  // missing values last, ties in name order
        const x = rows[a][sortCol], y = rows[b][sortCol];
        if (x === y) return a - b;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
    };
    const render = () => {
      const keep = shown(), html = [];
      for (const i of keep) {
        const r = rows[i];
        const name = data.sizes[i] ? `<a href="#image-${i}">${esc(r[0])}</a>` : esc(r[0]);
        let line = `<tr id="row-${i}"><th scope="row">${name}</th>`;
        for (let c = 1; c < cols.length; c++) line += `<td class="num">${show(r[c], cols[c])}</td>`;
        html.push(line + "</tr>");
      }
      body.innerHTML = html.join("");
      count.textContent = `${keep.length} of ${rows.length} images`;
      heads.forEach((h, c) => h.setAttribute("aria-sort",
        c === sortCol ? (sortDir > 0 ? "ascending" : "descending") : "none"));
    };
    table.querySelectorAll("thead button[data-col]").forEach(b => b.addEventListener("click", () => {
      const c = +b.dataset.col;
      sortDir = c === sortCol ? -sortDir : 1;
      sortCol = c;
      render();
    }));
    table.querySelectorAll("thead input[data-col]").forEach(input => input.addEventListener("input", () => {
      const c = +input.dataset.col, test = parseFilter(input.value, cols[c].kind);
      input.classList.toggle("bad", test === undefined);
      filters[c] = test || null;
      render();
    }));
    render();
    performance.mark("table-rendered");
    requestAnimationFrame(() => setTimeout(() => performance.mark("table-painted"), 0));
  }

  const gallery = document.getElementById("gallery");
  if (!gallery || !data.gallery.length) return;
  const summary = i => data.summary.map(c => `${esc(cols[c].label)} ${show(rows[i][c], cols[c])}`).join(" \u00b7 ");
  const card = (i, rank) => {
    const [w, h] = data.sizes[i], name = esc(rows[i][0]);
    const pics = data.kinds.map((kind, k) =>
      `<div><img width="${w}" height="${h}" alt="${kind} of ${name}" data-k="${k}">${kind}</div>`).join("");
    return `<figure class="card" id="image-${i}" data-i="${i}"><figcaption>#${rank + 1} ` +
      `<a href="#row-${i}" title="back to the table">${name}</a><span>${summary(i)}</span></figcaption>` +
      `<div class="pics">${pics}</div></figure>`;
  };
  const blocks = {};  // the JSON blocks of pictures read so far, by number
  const fill = fig => {
    const i = +fig.dataset.i, n = Math.floor(i / data.chunk);
    blocks[n] = blocks[n] || JSON.parse(document.getElementById(`report-pictures-${n}`).textContent);
    const uris = blocks[n][i - n * data.chunk];
    fig.querySelectorAll("img").forEach(img => { img.src = uris[+img.dataset.k]; });
  };
  // pictures are set when a card comes near the window, once the page (with its blocks of pictures) is read
  const seen = "IntersectionObserver" in window ? new IntersectionObserver(entries => entries.forEach(e => {
    if (e.isIntersecting) { fill(e.target); seen.unobserve(e.target); }
  }), {rootMargin: "1200px 0px"}) : {observe: fill};
  let ready = false, shown = 0;
  const rank = {};
  data.gallery.forEach((i, r) => { rank[i] = r; });
  // cards are added in batches as the window nears the end of the gallery, and up to any card a link asks for
  const more = upto => {
    const first = shown, html = [];
    for (; shown < Math.min(upto, data.gallery.length); shown++) html.push(card(data.gallery[shown], shown));
    gallery.insertAdjacentHTML("beforeend", html.join(""));
    if (ready) [...gallery.children].slice(first).forEach(fig => seen.observe(fig));
  };
  const end = document.createElement("div");
  gallery.after(end);
  const grow = () => {
    while (shown < data.gallery.length && end.getBoundingClientRect().top < innerHeight + 1500) more(shown + 12);
  };
  const reveal = () => {
    const m = location.hash.match(/^#image-(\d+)$/);
    if (!m || !(+m[1] in rank)) return;
    if (rank[+m[1]] >= shown) more(rank[+m[1]] + 1);
    document.getElementById(`image-${m[1]}`).scrollIntoView();
  };
  more(12);
  const start = () => {
    ready = true;
    [...gallery.children].forEach(fig => seen.observe(fig));
    addEventListener("scroll", grow, {passive: true});
    addEventListener("hashchange", reveal);
    grow();
    reveal();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""
