r"""Writes a one-page report (report.md and a self-contained report.html) of a run or an ablation.

  python scripts/report.py --workdir runs/ucf_gru              # a scripts/train.py workdir
  python scripts/report.py --workdir runs/ucf_gru --eval_dir runs/ucf_gru/eval_tta
  python scripts/report.py --workdir runs/ablation             # a scripts/ablate.py workdir

A run's report: its config, the test metrics of results.json, training curves
from metrics.jsonl, and the metrics and confusion matrix of a scripts/evaluate.py
folder (--eval_dir, default <workdir>/eval). An ablation's: the sweep, the summary
table and the plots. Pieces not on disk are skipped with a line saying so.
"""
from absl import app, flags

from videojax import cli
from videojax.tools import report

_WORKDIR = flags.DEFINE_string("workdir", None, "A run (train.py --workdir) or an ablation "
                               "(ablate.py --workdir) folder.", required=True)
_EVAL_DIR = flags.DEFINE_string("eval_dir", None, "A run's scripts/evaluate.py --out folder "
                                "(default <workdir>/eval).")
_OUT = flags.DEFINE_string("out", None, "Where report.md and report.html go "
                           "(default --workdir).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  out = report.write_report(_WORKDIR.value, eval_dir=_EVAL_DIR.value, out_dir=_OUT.value)
  print(f"{out['kind']} report: {out['markdown']} and {out['html']}")


if __name__ == "__main__":
  cli.run(main, renamed={"dir": "workdir", "out_dir": "out"})
