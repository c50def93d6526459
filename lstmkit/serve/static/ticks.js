// Chart tick labels, shared by the serving pages (forecast.js) and the studio (app.js; the studio
// serves this file from lstmkit/serve/static). A classic script: it defines tickLabels globally.
//
// Each label differs from the others and each is as short as it can be: values of 10,000 and
// more in SI units (100k, 1.25M), below 0.001 in scientific notation (5e-4), else plain, with the
// fewest significant digits that write every tick exactly (uPlot's own labels round to 3
// decimals: a learning rate's 0.0015 and 0.002 both read "0.002"). null / non-finite values
// (an axis's hidden splits) stay null.
const TICK_SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

function tickLabels(values) {
  const shown = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const top = Math.max(0, ...shown.map(Math.abs));
  const [div, suffix] = top >= 1e4 ? TICK_SI.find(([d]) => top >= d) : [1, ""];
  const sci = top > 0 && top < 1e-3;
  const write = (v, p) => {
    if (Math.abs(v) <= top * 1e-12) return [0, "0"];
    const x = v / div;
    if (sci) {
      const [m, e] = x.toExponential(p - 1).split("e");
      return [Number(m + "e" + e), String(Number(m)) + "e" + Number(e)];
    }
    const r = Number(x.toPrecision(p));
    return [r, String(r) + suffix];
  };
  for (let p = 1; p <= 15; p++) {
    const out = values.map((v) => (shown.includes(v) ? write(v, p) : null));
    const exact = out.every((o, i) => o === null || Math.abs(o[0] * div - values[i]) <= Math.max(top, 1e-300) * 1e-9);
    const labels = out.filter(Boolean).map((o) => o[1]);
    if (exact && new Set(labels).size === labels.length) return out.map((o) => (o === null ? null : o[1]));
  }
  return values.map((v) => (shown.includes(v) ? String(v) : null));
}
