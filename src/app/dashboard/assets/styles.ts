/**
 * The dashboard's stylesheet, served as `/dashboard/assets/dashboard.css`. Colours meet WCAG AA
 * (text ≥ 4.5:1 on its background); focus is always visible; tables scroll sideways inside
 * their own box on a narrow screen (390 px), so the page itself never does.
 */
export const STYLES_CSS = String.raw`:root {
  --fg: #1b1f24; --muted: #4a5360; --bg: #ffffff; --panel: #f5f7fa; --line: #cfd6de;
  --accent: #0b5cad; --accent-fg: #ffffff; --danger: #a4161a; --ok: #1a6b34; --warn: #8a4b00; --focus: #c2410c;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; line-height: 1.45; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, select:focus-visible, input:focus-visible, summary:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--bg); padding: .5rem; }
.skip:focus { left: .5rem; z-index: 10; }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; justify-content: space-between; padding: .75rem 1rem; background: #0d2237; color: #ffffff; }
header.top a { color: #ffffff; }
header.top h1 { font-size: 1.2rem; margin: 0; }
header.top nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
header.top .who { display: flex; gap: .75rem; align-items: center; font-size: .9rem; }
main { max-width: 78rem; margin: 0 auto; padding: 1rem; }
section { margin: 0 0 2rem; }
h2 { font-size: 1.15rem; margin: 1.25rem 0 .5rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; }
.muted, .status { color: var(--muted); font-size: .9rem; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
caption { text-align: left; padding: .5rem .75rem; font-weight: 600; background: var(--panel); }
th, td { text-align: left; padding: .4rem .75rem; border-top: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.state { display: inline-block; padding: 0 .4rem; border-radius: 4px; background: #e6eaef; color: var(--fg); white-space: nowrap; }
.state-failed, .state-budget_exceeded { background: #fbe4e4; color: var(--danger); }
.state-coding, .state-planning, .state-testing, .state-reviewing { background: #e1ecf8; color: #0a4a8c; }
.state-ready_for_merge, .state-merged { background: #e3f3e8; color: var(--ok); }
form.filters { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .5rem 1rem; align-items: end; padding: .75rem; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
form.filters .field { display: flex; flex-direction: column; gap: .2rem; }
form.filters label { font-size: .85rem; font-weight: 600; }
select, input[type=password], input[type=text] { font: inherit; padding: .35rem .4rem; border: 1px solid #6b7785; border-radius: 4px; background: #ffffff; color: var(--fg); min-height: 2.25rem; }
button, .button { font: inherit; display: inline-block; padding: .45rem .9rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-fg); cursor: pointer; text-decoration: none; min-height: 2.25rem; white-space: nowrap; }
button.link { background: transparent; border-color: #ffffff; color: #ffffff; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin: .75rem 0; }
dl.totals { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .5rem; margin: .75rem 0; }
dl.totals div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
dl.totals dt { font-size: .8rem; color: var(--muted); }
dl.totals dd { margin: 0; font-size: 1.15rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.chart { position: relative; height: 18rem; margin: .75rem 0; }
meter { width: 6rem; }
pre.report { white-space: pre-wrap; word-break: break-word; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; font-size: .85rem; }
.login { max-width: 28rem; margin: 3rem auto; padding: 1.5rem; border: 1px solid var(--line); border-radius: 8px; }
.login form { display: flex; flex-direction: column; gap: .5rem; margin-top: 1rem; }
.error { color: var(--danger); font-weight: 600; }
@media (max-width: 600px) {
  main { padding: .5rem; }
  th, td { padding: .35rem .5rem; }
  .chart { height: 14rem; }
}
`;
