"""The efficiency study: a grid of training runs (backbones x methods x tasks x seeds, plus
the LoRA-rank, few-shot and time-budget side studies), a tidy results table, and a report
with the study's tables and figures."""
