"""``bedside report``: the study's tables and figures from the tidy results table.

Sections mirror the study: (1) main table, (2) score vs trainable parameters and model size,
(3) general vs domain pre-training per backbone size, (4) score vs training time and vs
few-shot size (and the time-budget study), (5) efficiency vs performance with the holistic
efficiency ranking (mean of min-max-scaled time to best, trainable parameters and total
parameters; lower is more efficient), (6) score difference vs LoRA rank 8. Then what the
measured results say about the study's findings.
"""

from __future__ import annotations

from pathlib import Path

from .report_figures import _empty, figure_domain, figure_efficiency, figure_params, figure_rank, figure_time
from .report_tables import _params, _pct, _tasks, findings, holistic, main_table, rank_differences, summarise_main


def write_report(rows: list[dict], folder: Path, title: str = "Efficiency study") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if r.get("status") == "ok" and r.get("score") is not None]
    failed = [r for r in rows if r.get("status") != "ok"]
    main = [r for r in ok if r["study"] == "main"]
    tasks = _tasks(main) or _tasks(ok)
    summary = summarise_main(main)
    ranking = holistic(summary)
    fig1 = figure_params(summary, tasks, ok, folder) if summary else _empty(folder / "fig1_params.png", "no runs")
    fig2 = figure_domain(summary, tasks, folder) if summary else _empty(folder / "fig2_domain.png", "no runs")
    fig3 = figure_time(summary, ok, tasks, folder)
    fig4 = figure_efficiency(ranking, folder) if ranking else _empty(folder / "fig4_efficiency.png", "no runs")
    fig5 = figure_rank(rank_differences(ok), folder)
    rank_rows = "\n".join(
        f"| {i + 1} | {e['backbone']} | {e['method']} | {e['efficiency']:.3f} | {_pct(e['score'])} | "
        f"{e['time_to_best_s'] or 0:.0f} | {_params(e['trainable_params'])} | "
        f"{_params(e['backbone_params'])} |"
        for i, e in enumerate(ranking)
    )
    text = (
        f"""# {title}

{len(rows)} runs: {len(ok)} finished, {len(failed)} failed. Scores are each task's primary test metric
(the best validation epoch), ×100.

## 1. Main results

{main_table(summary, tasks, ok)}
## 2. Performance vs trainable parameters and model size

![score vs parameters]({fig1})

## 3. General vs domain pre-training per backbone size

![domain pre-training]({fig2})

## 4. Score vs training time and few-shot size

![time and few-shot]({fig3})

## 5. Efficiency vs performance

Holistic efficiency: the mean of min-max-scaled time to best epoch, trainable parameters and
total parameters over the study's (backbone, method) pairs; lower is more efficient.

| rank | backbone | method | holistic efficiency | median score | time to best (s) | trainable | total |
|---|---|---|---|---|---|---|---|
{rank_rows}

![efficiency]({fig4})

## 6. Score difference vs LoRA rank 8

![rank]({fig5})

## Do the study's findings hold here?

"""
        + "\n".join(f"- {line}" for line in findings(summary, ok))
        + "\n"
    )
    if failed:
        text += "\n## Failed runs\n\n" + "\n".join(f"- `{r['run_id']}`: {r.get('error')}" for r in failed) + "\n"
    path = folder / "report.md"
    path.write_text(text, encoding="utf-8")
    return path
