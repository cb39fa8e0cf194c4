/**
 * A grouped bar chart as hand-written SVG: one group per scenario, one bar per client. Heights are
 * each group's values divided by its reference (floor/effect where it ran, else the group's
 * largest value) on a linear scale, so bar heights compare truthfully within and across groups;
 * each bar is labelled with its absolute figure. The raw ceiling is a dashed line over the groups
 * it measures only. Self-contained (white background, generic fonts), so it embeds in a README.
 */

export interface ChartSeries {
  readonly id: string
  readonly label: string
  readonly color: string
  /** dark value labels inside the bar (for light colors) */
  readonly darkText?: boolean
}

export interface ChartGroup {
  readonly label: string
  readonly unit: string
  /** value per series id; a missing value draws no bar */
  readonly values: ReadonlyMap<string, number>
  /** ids whose value is flagged noisy (labelled with a "~") */
  readonly noisy: ReadonlySet<string>
  readonly ceiling?: number | undefined
  /** what heights are divided by; the group's largest value when absent */
  readonly reference?: number | undefined
}

export interface Chart {
  readonly title: string
  readonly subtitle: string
  /** a note under the chart */
  readonly footnote?: string | undefined
  readonly series: ReadonlyArray<ChartSeries>
  readonly groups: ReadonlyArray<ChartGroup>
  /** what the reference is called, for the axis (e.g. "floor/effect") */
  readonly referenceLabel: string
}

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const short = (x: number): string => {
  if (x >= 1e6) return `${+(x / 1e6).toFixed(x >= 1e7 ? 0 : 2)}M`
  if (x >= 1e3) return `${+(x / 1e3).toFixed(x >= 1e5 ? 0 : 1)}k`
  return `${Math.round(x)}`
}

const n = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1))

type Attrs = Record<string, string | number>
const attrs = (a: Attrs): string =>
  Object.entries(a)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? n(v) : esc(v)}"`)
    .join("")
const el = (tag: string, a: Attrs, body?: string): string =>
  body === undefined ? `<${tag}${attrs(a)}/>` : `<${tag}${attrs(a)}>${body}</${tag}>`
const text = (a: Attrs, s: string): string => el("text", a, esc(s))
/** Text rotated to read bottom-up, anchored at (x, y). */
const vtext = (x: number, y: number, a: Attrs, s: string): string =>
  text({ transform: `translate(${n(x)} ${n(y)}) rotate(-90)`, ...a }, s)

const DASH = { stroke: "#333", "stroke-width": 1.5, "stroke-dasharray": "5 3" }

export const renderChart = (chart: Chart): string => {
  const barW = 20
  const barGap = 3
  const groupPad = 18
  // Wide enough for its labels when there are few bars.
  const barsW = chart.series.length * (barW + barGap) - barGap
  const groupW = Math.max(130, barsW + 2 * groupPad)
  const left = 64
  const right = 16
  const top = 104
  const plotH = 340
  const width = left + chart.groups.length * groupW + right
  const height = top + plotH + (chart.footnote === undefined ? 56 : 72)
  const bottomY = top + plotH

  const refOf = (g: ChartGroup): number =>
    g.reference !== undefined && g.reference > 0 ? g.reference : Math.max(1e-9, ...g.values.values())
  let top1 = 1
  for (const g of chart.groups) {
    const ref = refOf(g)
    for (const v of g.values.values()) top1 = Math.max(top1, v / ref)
    if (g.ceiling !== undefined) top1 = Math.max(top1, g.ceiling / ref)
  }
  const step = top1 <= 1.5 ? 0.25 : top1 <= 3 ? 0.5 : top1 <= 6 ? 1 : Math.ceil(top1 / 6)
  const hi = Math.ceil((top1 * 1.08) / step) * step
  const y = (r: number) => top + plotH * (1 - Math.min(r, hi) / hi)

  const out: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"` +
      ` font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">`,
    el("rect", { width, height, fill: "#ffffff" }),
    text({ x: left, y: 24, "font-size": 16, "font-weight": 600, fill: "#222" }, chart.title),
    text({ x: left, y: 44, "font-size": 11, fill: "#555" }, chart.subtitle),
  ]

  // Legend, wrapped to the chart's width.
  const legend = [
    ...chart.series.map((s) => ({ label: s.label, mark: el("rect", { x: 0, y: -10, width: 12, height: 12, fill: s.color }) })),
    ...(chart.groups.some((g) => g.ceiling !== undefined)
      ? [{ label: "raw node:net ceiling", mark: el("line", { x1: 0, y1: -4, x2: 14, y2: -4, ...DASH }) }]
      : []),
  ]
  let lx = left
  let ly = 70
  for (const e of legend) {
    const w = 16 + e.label.length * 6.3 + 18
    if (lx + w > width - right) {
      lx = left
      ly += 18
    }
    out.push(el("g", { transform: `translate(${n(lx)} ${ly})` }, e.mark + text({ x: 17, y: 0, "font-size": 11, fill: "#333" }, e.label)))
    lx += w
  }

  // Grid: ratios to the reference, 1× drawn darker.
  for (let r = 0; r <= hi + 1e-9; r += step) {
    const yr = y(r)
    out.push(
      el("line", { x1: left, y1: yr, x2: width - right, y2: yr, stroke: Math.abs(r - 1) < 1e-9 ? "#999" : "#e4e4e4" }),
      text({ x: left - 6, y: yr + 4, "font-size": 11, "text-anchor": "end", fill: "#555" }, `${+r.toFixed(2)}×`),
    )
  }
  out.push(
    vtext(16, top + plotH / 2, { "font-size": 11, "text-anchor": "middle", fill: "#555" }, `÷ ${chart.referenceLabel} (linear)`),
  )

  chart.groups.forEach((g, gi) => {
    const ref = refOf(g)
    const gx = left + gi * groupW
    if (gi > 0) out.push(el("line", { x1: gx, y1: top, x2: gx, y2: bottomY, stroke: "#f0f0f0" }))
    chart.series.forEach((s, si) => {
      const v = g.values.get(s.id)
      if (v === undefined || !(v > 0)) return
      const x = gx + (groupW - barsW) / 2 + si * (barW + barGap)
      const yt = y(v / ref)
      const h = bottomY - yt
      const tip = `${s.label}, ${g.label}: ${Math.round(v).toLocaleString("en-US")} ${g.unit} (${(v / ref).toFixed(2)}×)`
      out.push(el("rect", { x, y: yt, width: barW, height: h, fill: s.color }, el("title", {}, esc(tip))))
      // The value reads up the bar: inside it when it fits, else above it.
      const label = short(v) + (g.noisy.has(s.id) ? "~" : "")
      const cx = x + barW / 2 + 3.5
      const inside = h >= label.length * 6 + 10
      out.push(
        inside
          ? vtext(cx, yt + 5, { "font-size": 10, "text-anchor": "end", fill: s.darkText === true ? "#222" : "#fff" }, label)
          : vtext(cx, yt - 4, { "font-size": 10, "text-anchor": "start", fill: "#222" }, label),
      )
    })
    if (g.ceiling !== undefined && g.ceiling > 0) {
      const yc = y(g.ceiling / ref)
      out.push(
        el("line", { x1: gx + 6, y1: yc, x2: gx + groupW - 6, y2: yc, ...DASH }),
        // Above the line, or below it when a grid label sits just above.
        text(
          { x: gx + groupW - 8, y: yc - top < 14 ? yc + 12 : yc - 4, "font-size": 10, "text-anchor": "end", fill: "#333" },
          `raw ${short(g.ceiling)}`,
        ),
      )
    }
    out.push(
      text({ x: gx + groupW / 2, y: bottomY + 20, "font-size": 12, "text-anchor": "middle", fill: "#222" }, g.label),
      text({ x: gx + groupW / 2, y: bottomY + 36, "font-size": 10, "text-anchor": "middle", fill: "#777" }, `${g.unit}, 1× = ${short(ref)}`),
    )
  })
  out.push(el("line", { x1: left, y1: bottomY, x2: width - right, y2: bottomY, stroke: "#888" }))
  if (chart.footnote !== undefined) out.push(text({ x: left, y: height - 10, "font-size": 10, fill: "#777" }, chart.footnote))
  out.push("</svg>")
  return out.join("\n") + "\n"
}
