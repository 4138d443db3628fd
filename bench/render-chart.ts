/** One measured contender, as the chart needs it. */
interface Bar {
  name: string;
  connections: number;
  rps: number;
  p99: number;
}

const escape = (text: string) =>
  text.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c] ?? c);

/** A dependency-free SVG: throughput by contender, and throughput by connection count. */
export function renderChart(runs: Bar[], scale: Bar[]): string {
  const width = 760;
  const barHeight = 26;
  const left = 170;
  const max = Math.max(...runs.map((r) => r.rps), 1);
  const rows = runs
    .map((run, i) => {
      const y = 50 + i * (barHeight + 10);
      const w = ((width - left - 120) * run.rps) / max;
      return `<text x="10" y="${y + 18}">${escape(run.name)}</text><rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="#3b66f5"/><text x="${(left + w + 8).toFixed(1)}" y="${y + 18}">${run.rps.toLocaleString('en')} req/s · p99 ${run.p99} ms</text>`;
    })
    .join('');
  const top = 70 + runs.length * (barHeight + 10);
  const counts = [...new Set(scale.map((s) => s.connections))];
  const scaleMax = Math.max(...scale.map((s) => s.rps), 1);
  const group = 150;
  const chartHeight = 160;
  const columns = counts
    .map((connections, i) => {
      const x = left + i * group;
      return scale
        .filter((s) => s.connections === connections)
        .map((s, j) => {
          const h = (chartHeight * s.rps) / scaleMax;
          const color = s.name === 'billfold' ? '#3b66f5' : '#9aa5b8';
          return `<rect x="${x + j * 40}" y="${(top + 30 + chartHeight - h).toFixed(1)}" width="34" height="${h.toFixed(1)}" fill="${color}"/>`;
        })
        .join('')
        .concat(`<text x="${x}" y="${top + chartHeight + 50}">${connections} conn.</text>`);
    })
    .join('');
  const height = top + chartHeight + 70;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="24" font-size="16" font-weight="bold">Relay throughput (${runs[0]?.connections ?? 0} connections)</text>
${rows}
<text x="10" y="${top + 14}" font-size="16" font-weight="bold">By connection count: bare relay (grey) and billfold (blue)</text>
${columns}
</svg>
`;
}
