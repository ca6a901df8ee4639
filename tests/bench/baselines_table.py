#!/usr/bin/python3
"""Each baseline on fmnist_mlp, best of a small external-tuning sweep: time to target and
validation accuracy.

Writes a sweep config (one study of --trials trials per baseline, each baseline's own search
space, the workload's real budget, targets and data, wall clock, two trials at a time), runs
`trainperf sweep` into a fresh results directory, and prints a markdown table from its
results.db: per baseline the fastest trial's time to the validation target (AlgoPerf's
per-study time), that trial's hyperparameters, its validation accuracy at its last eval
(trials end when both targets are reached, so this is at or just above the target unless the
budget ran out first), the best validation accuracy over all its trials, and how many trials
reached the target. Re-running with the same --results resumes.

Run by hand after building (never by ctest; ~5-12 minutes on 2 cores):
    /usr/bin/python3 tests/bench/baselines_table.py [--trials 4] [--results DIR]
"""
import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, optimizer, schedule, data selection, search space (under submissions/)
BASELINES = [
    ("sgd", "sgd", "warmup_cosine", "next_batch", "sgd/tuning_search_space.json"),
    ("momentum", "momentum", "warmup_linear", "next_batch", "momentum/tuning_search_space.json"),
    ("nesterov", "nesterov", "warmup_linear", "next_batch", "momentum/tuning_search_space.json"),
    ("adamw", "adamw", "warmup_cosine", "next_batch", "adamw/tuning_search_space.json"),
    ("nadamw", "nadamw", "warmup_cosine", "next_batch", "nadamw/tuning_search_space.json"),
    ("lamb", "lamb", "warmup_cosine", "next_batch", "lamb/tuning_search_space.json"),
    ("adafactor", "adafactor", "warmup_cosine", "next_batch", "adafactor/tuning_search_space.json"),
    ("sam", "sam", "warmup_cosine", "next_batch", "sam/tuning_search_space.json"),
    ("shampoo", "shampoo", "warmup_cosine", "next_batch", "shampoo/tuning_search_space.json"),
    ("schedule_free_adamw", "schedule_free_adamw", "constant", "next_batch",
     "schedule_free_adamw/tuning_search_space.json"),
    ("adamw_obs", "adamw", "warmup_cosine", "online_batch_selection",
     "adamw/tuning_search_space.json"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--results", default=None)
    ap.add_argument("--only", default="", help="comma-separated baseline names")
    a = ap.parse_args()
    out = a.results or os.path.join(ROOT, "results",
                                    "baselines-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    chosen = [b for b in BASELINES if not a.only or b[0] in a.only.split(",")]
    cfg = os.path.join(out, "baselines.cfg")
    with open(cfg, "w") as f:
        f.write("sweep = {\n  ruleset = \"external\";\n  workloads = [\"fmnist_mlp\"];\n"
                "  studies = 1;\n  trials = %d;\n  clock = \"wall\";\n  jobs = 2;\n"
                "  seed = 0;\n  submissions = (\n" % a.trials)
        f.write(",\n".join(
            "    { name = \"%s\"; optimizer = \"%s\"; schedule = \"%s\"; selection = \"%s\";\n"
            "      search_space = \"%s\"; }" % (n, o, s, d, os.path.join(ROOT, "submissions", sp))
            for n, o, s, d, sp in chosen))
        f.write("\n  );\n};\n")
    subprocess.run([os.path.join(a.build, "trainperf"), "sweep", cfg, "--results", out,
                    "--plugins", os.path.join(ROOT, "plugins"), "--quiet"], check=True)

    db = sqlite3.connect(os.path.join(out, "results.db"))
    print("fmnist_mlp (validation target 0.885, budget 30 s wall, one core per trial), "
          "1 study x %d trials per baseline; results in %s\n" % (a.trials, out))
    print("| baseline | time to target s (best trial) | its validation acc. at last eval | "
          "best validation acc. (all trials) | trials reaching target | steps/s | best trial's hyperparameters |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, *_ in chosen:
        rows = db.execute(
            "SELECT id, time_to_target, best_validation_metric, hparams, steps, "
            "submission_time_wall, status FROM trials WHERE submission = ?", (name,)).fetchall()
        if not rows:
            print("| %s | no trials |" % name)
            continue

        def ttt(r):
            return r[1] if r[1] is not None and math.isfinite(r[1]) else math.inf
        best = min(rows, key=lambda r: (ttt(r), -(r[2] or 0)))
        last = db.execute("SELECT validation_metric FROM evals WHERE trial_id = ? "
                          "ORDER BY eval_index DESC LIMIT 1", (best[0],)).fetchone()
        reached = sum(1 for r in rows if math.isfinite(ttt(r)))
        hp = json.loads(best[3])
        short = ", ".join("%s=%.3g" % (k, v) for k, v in hp.items()
                          if k not in ("label_smoothing", "dropout_rate", "warmup_factor"))
        sps = best[4] / best[5] if best[5] else float("nan")
        print("| %s | %s | %.4f | %.4f | %d/%d | %.0f | %s |" % (
            name, "%.2f" % ttt(best) if math.isfinite(ttt(best)) else "not reached",
            last[0] if last else float("nan"), max(r[2] or 0 for r in rows), reached, len(rows),
            sps, short))


if __name__ == "__main__":
    sys.exit(main())
