#!/usr/bin/python3
"""Set a workload's targets, budget and step_hint by AlgoPerf's target-setting protocol
(BENCHMARK.md section 8), scaled down to this machine.

For one base workload and all its held-out variants, in two phases, because AlgoPerf's
held-out variants run with their base's budget and step_hint, so their targets must be set at
that budget:

Phase 1, the base workload.
1. Tune. An external-tuning sweep (`trainperf sweep`) of the four standard baselines, AdamW,
   NAdamW (its range-form space), Nesterov and heavy-ball momentum, each with its own search
   space from submissions/, one study of --trials quasi-random points, on the base. Targets
   are set out of reach so every trial runs its whole budget: the workload's current budget
   times --budget-scale, with its current step_hint, two trials at a time (one core each).
2. Pick the trial with the best validation metric over its whole run (any optimizer).
3. Rerun that configuration --reruns times with fresh seeds (`trainperf run`), again to the
   end of the budget.
4. Derive, as the reference did:
   - validation target = the median over the reruns of each run's best validation metric;
   - test target = the worst test metric, among the reruns that reached the validation target,
     at the first eval where each reached it;
   - budget = 4/3 x the median submission time the reruns took to reach the validation
     target, and step_hint = 4/3 x the median number of steps they took (rounded to 100).

Phase 2, every held-out variant, at the base's new budget and step_hint: the same quasi-random
points of the four baselines as phase 1 drew (what a sweep with heldout = "all" runs), then the
pick, the reruns and the targets as in steps 2-4 (no budget: the base's is theirs).

Report. A markdown section (date, command, machine, per-optimizer best, the reruns, the
derived numbers) appended to workloads/<name>/calibration.md; with --write, the numbers are
also written into workloads/<name>/<name>.cfg (the base's budget, step_hint and targets, and
each variant's targets).

Scaling: the reference tunes with many trials and reruns 20 times; the defaults here (5 trials
per optimizer, 5 reruns) keep one workload with its three variants to about
(4 x 5 + 5) x (budget + 3 x new budget) / 2 seconds of CPU. Runs are resumable: results go to
--results (default results/calibrate-<name>: tune/ and reruns/ for the base, variants/ for
phase 2), and a repeated command reuses finished trials.

Run by hand after building (never by ctest):
    /usr/bin/python3 workloads/calibrate.py fmnist_mlp [--trials 5] [--reruns 5] [--write]
"""
import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, optimizer, schedule, search space (under submissions/): BENCHMARK.md section 8's four.
BASELINES = [
    ("adamw", "adamw", "warmup_cosine", "adamw/tuning_search_space.json"),
    ("nadamw", "nadamw", "warmup_cosine", "nadamw/tuning_search_space_ranges.json"),
    ("nesterov", "nesterov", "warmup_linear", "momentum/tuning_search_space.json"),
    ("momentum", "momentum", "warmup_linear", "momentum/tuning_search_space.json"),
]


def read_workload(path):
    """The few settings the protocol needs, read from the libconfig file with `trainperf list`'s
    view avoided: name, budget, maximize (from the metric), variant names."""
    text = open(path).read()
    name = re.search(r'^\s*name\s*=\s*"([a-z0-9_]+)"\s*;', text, re.M).group(1)
    budget = float(re.search(r"^\s*budget\s*=\s*([0-9.eE+-]+)\s*;", text, re.M).group(1))
    step_hint = int(re.search(r"^\s*step_hint\s*=\s*([0-9]+)\s*;", text, re.M).group(1))
    variants = re.findall(r'\{[ \t]*name[ \t]*=[ \t]*"([a-z0-9_]+)"[ \t]*;', text)
    return name, budget, step_hint, variants


def metric_direction(trainperf, plugins, name):
    """+1 when the workload's metric is maximised, -1 when minimised (from `trainperf list`)."""
    out = subprocess.run([trainperf, "list", "--plugins", plugins], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == name:
            metric = parts[1]
            return -1 if metric in ("loss", "cross_entropy", "error_rate", "wer", "l1",
                                    "log_loss") else 1
    sys.exit("calibrate: workload %s not listed by trainperf list" % name)


def unreachable(direction):
    """Validation and test targets no run reaches, so every run trains to its budget."""
    return ("-1e30", "-1e30") if direction < 0 else ("1e30", "1e30")


def tune(a, name, direction, results):
    """Phase 1, step 1: the sweep of the four baselines on the base workload. (A results
    directory of an earlier version, whose sweep also ran the variants, is reused as it is.)"""
    vt, tt = unreachable(direction)
    cfg = os.path.join(results, "tune.cfg")
    subs = ",\n".join(
        '    { name = "%s"; optimizer = "%s"; schedule = "%s";\n      search_space = "%s"; }'
        % (n, o, s, os.path.join(ROOT, "submissions", sp)) for n, o, s, sp in BASELINES)
    with open(cfg, "w") as f:
        f.write('sweep = {\n  ruleset = "external";\n  workloads = ["%s"];\n  studies = 1;\n'
                '  trials = %d;\n  heldout = "none";\n  budget_scale = %g;\n  clock = "%s";\n'
                '  jobs = %d;\n  seed = %d;\n  set = ["targets.validation=%s", '
                '"targets.test=%s"];\n  submissions = (\n%s\n  );\n};\n'
                % (name, a.trials, a.budget_scale, a.clock, a.jobs, a.seed, vt, tt, subs))
    subprocess.run([a.trainperf, "sweep", cfg, "--results", results, "--plugins", a.plugins,
                    "--quiet"], check=True)


def trial_rows(db, where, args=()):
    return db.execute("SELECT id, submission, variant, optimizer, schedule, hparams, seed, "
                      "status FROM trials WHERE " + where, args).fetchall()


def evals(db, trial_id):
    return db.execute("SELECT eval_index, global_step, score, validation_metric, test_metric "
                      "FROM evals WHERE trial_id = ? ORDER BY eval_index", (trial_id,)).fetchall()


def best_metric(rows, direction):
    vals = [r[3] for r in rows if r[3] is not None and math.isfinite(r[3])]
    if not vals:
        return None
    return max(vals) if direction > 0 else min(vals)


def reached(value, target, direction):
    return value is not None and (value >= target if direction > 0 else value <= target)


def run_to_budget(a, name, variant, opt, schedule, hparams, seed, results, direction, budget,
                  step_hint=None):
    """One trial of a configuration to the end of `budget` seconds (targets out of reach)."""
    vt, tt = unreachable(direction)
    cmd = [a.trainperf, "run", "--workload", name, "--optimizer", opt, "--schedule", schedule,
           "--hparams", ",".join("%s=%r" % (k, v) for k, v in hparams.items()),
           # Seeds are uint64; SQLite hands those >= 2^63 back negative.
           "--seed", str(seed % 2**64), "--clock", a.clock, "--results", results, "--plugins",
           a.plugins, "--quiet",
           "--set", "targets.validation=" + vt, "--set", "targets.test=" + tt,
           "--set", "budget=%r" % budget]
    if step_hint:
        cmd += ["--set", "step_hint=%d" % step_hint]
    if variant:
        cmd += ["--variant", variant]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if "(trial " not in out.stdout:  # no trial recorded: say why rather than lose it silently
        sys.stderr.write("calibrate: %s %s %s seed %d did not run:\n%s%s" % (
            name, variant or "base", opt, seed % 2**64, out.stdout, out.stderr))
    return out


def finished(db_path, name, variant, seed, opt, hparams):
    """The id of a trial of this configuration that an earlier invocation ran to its end."""
    if not os.path.exists(db_path):
        return None
    with sqlite3.connect(db_path) as db:
        signed = seed - 2**64 if seed >= 2**63 else seed  # as SQLite stores a uint64
        rows = db.execute("SELECT id, hparams, message FROM trials WHERE workload = ? AND "
                          "variant = ? AND seed = ? AND optimizer = ? AND status != 'running' "
                          "ORDER BY id DESC", (name, variant, signed, opt)).fetchall()
    return next((r[0] for r in rows if json.loads(r[1]) == hparams and not interrupted(r[2])),
                None)


def interrupted(message):
    """A trial whose worker was stopped from outside (an interrupted calibration: Ctrl-C, a
    kill of the process group) ran no verdict on its configuration: it is run again."""
    return re.search(r"killed by signal \d+ \((SIGTERM|SIGINT|SIGHUP)", message) is not None


def run_all(a, jobs):
    """Run the (callable) jobs, a.jobs at a time."""
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(lambda f: f(), jobs))


def fmt(x):
    return "%.6g" % x if x is not None and math.isfinite(x) else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload")
    ap.add_argument("--trials", type=int, default=5, help="tuning trials per optimizer")
    ap.add_argument("--reruns", type=int, default=5)
    ap.add_argument("--budget-scale", type=float, default=1.0,
                    help="tuning and rerun budget = the workload's budget x this")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="the timing clock of every run (cpu: steadier on a busy machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, "plugins"))
    ap.add_argument("--results", default=None)
    ap.add_argument("--write", action="store_true", help="write the numbers into the .cfg")
    a = ap.parse_args()
    a.trainperf = os.path.join(a.build, "trainperf")
    cfg_path = os.path.join(ROOT, "workloads", a.workload, a.workload + ".cfg")
    name, a.budget, a.step_hint, variants = read_workload(cfg_path)
    direction = metric_direction(a.trainperf, a.plugins, name)
    results = a.results or os.path.join(ROOT, "results", "calibrate-" + name)
    os.makedirs(results, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)

    tune_dir, rerun_dir = os.path.join(results, "tune"), os.path.join(results, "reruns")
    var_dir = os.path.join(results, "variants")
    os.makedirs(tune_dir, exist_ok=True)
    tune(a, name, direction, tune_dir)
    budget1 = a.budget * a.budget_scale

    db = sqlite3.connect(os.path.join(tune_dir, "results.db"))
    report = ["## %s: calibration of %s" % (started.strftime("%Y-%m-%d %H:%M UTC"), name), "",
              "Command: `/usr/bin/python3 workloads/calibrate.py %s --trials %d --reruns %d "
              "--budget-scale %g --clock %s%s` on %s (%s), %d trials at a time; metric %s." % (
                  name, a.trials, a.reruns, a.budget_scale, a.clock,
                  " --write" if a.write else "", platform.node() or "this machine",
                  platform.processor() or platform.machine(), a.jobs,
                  "maximised" if direction > 0 else "minimised"), ""]
    derived = {}

    def pick_and_rerun(variant, trials, budget, step_hint, rdb_path, rdir):
        """Steps 2-4 for one workload or variant: trials are (row, its evals) of the tuning
        runs; returns the derived numbers (or None) and appends to the report."""
        label = variant or "base"
        scored = []
        for r, ev in trials:
            b = best_metric(ev, direction)
            if b is not None:
                scored.append((b, r))
        if not scored:
            report.extend(["### %s: no tuning trial produced a finite metric" % label, ""])
            return None
        report.extend(["### %s (budget %g s, step_hint %s, %s clock)" % (
                           label, budget, step_hint or a.step_hint, a.clock), "",
                       "| optimizer | best validation (of %d trials) | hyperparameters |" %
                       a.trials, "| --- | --- | --- |"])
        for n, *_ in BASELINES:
            mine = [x for x in scored if x[1][1] == n]
            if mine:
                b, r = (max if direction > 0 else min)(mine, key=lambda x: x[0])
                report.append("| %s | %s | `%s` |" % (n, fmt(b), r[5]))
        best, pick = (max if direction > 0 else min)(scored, key=lambda x: x[0])
        hparams = json.loads(pick[5])
        seeds = [1000 + a.seed * 100 + k for k in range(a.reruns)]
        run_all(a, [lambda sd=sd: run_to_budget(a, name, variant, pick[3], pick[4], hparams, sd,
                                                rdir, direction, budget, step_hint)
                    for sd in seeds
                    if finished(rdb_path, name, variant, sd, pick[3], hparams) is None])
        rdb = sqlite3.connect(rdb_path)
        bests, runs = [], []
        for sd in seeds:
            tid = finished(rdb_path, name, variant, sd, pick[3], hparams)
            ev = evals(rdb, tid) if tid is not None else []
            b = best_metric(ev, direction)
            runs.append((sd, ev, b))
            if b is not None:
                bests.append(b)
        rdb.close()
        if not bests:
            report.extend(["", "Reruns of %s produced no finite metric." % pick[1], ""])
            return None
        vtarget = statistics.median(bests)
        tests, times, steps = [], [], []
        for sd, ev, b in runs:
            first = next((e for e in ev if reached(e[3], vtarget, direction)), None)
            if first is not None:
                tests.append(first[4])
                times.append(first[2])
                steps.append(first[1])
        ttarget = (min(tests) if direction > 0 else max(tests)) if tests else None
        report.extend(["", "Picked: %s (best validation %s): `%s`." % (pick[1], fmt(best),
                                                                        pick[5]),
                       "", "| rerun seed | best validation | reached the target at (s) | steps |",
                       "| --- | --- | --- | --- |"])
        for sd, ev, b in runs:
            first = next((e for e in ev if reached(e[3], vtarget, direction)), None)
            report.append("| %d | %s | %s | %s |" % (sd, fmt(b), fmt(first[2]) if first else "-",
                                                    first[1] if first else "-"))
        d = {"validation": vtarget, "test": ttarget}
        line = "validation target %s (median of %d), test target %s" % (
            fmt(vtarget), len(bests), fmt(ttarget))
        if not variant and times:
            d["budget"] = round(4.0 / 3.0 * statistics.median(times), 1)
            d["step_hint"] = int(round(4.0 / 3.0 * statistics.median(steps) / 100.0)) * 100
            line += ", budget %s s, step_hint %d" % (fmt(d["budget"]), d["step_hint"])
        report.extend(["", "Derived: " + line + ".", ""])
        return d

    # Phase 1: the base.
    base_rows = trial_rows(db, "workload = ? AND variant = ''", (name,))
    base = pick_and_rerun("", [(r, evals(db, r[0])) for r in base_rows], budget1, None,
                          os.path.join(rerun_dir, "results.db"), rerun_dir)
    if base:
        derived[""] = base

    # Phase 2: the variants at the base's new budget and step_hint, on phase 1's points.
    if variants and not (base and "budget" in base):
        report.extend(["Variants not calibrated: the base's budget could not be derived.", ""])
    elif variants:
        vdb_path = os.path.join(var_dir, "results.db")
        jobs = []
        for variant in variants:
            for r in base_rows:
                hp = json.loads(r[5])
                if finished(vdb_path, name, variant, r[6], r[3], hp) is None:
                    jobs.append(lambda v=variant, r=r, hp=hp: run_to_budget(
                        a, name, v, r[3], r[4], hp, r[6], var_dir, direction, base["budget"],
                        base["step_hint"]))
        run_all(a, jobs)
        for variant in variants:
            trials = []
            with sqlite3.connect(vdb_path) as vdb:
                for r in base_rows:
                    tid = finished(vdb_path, name, variant, r[6], r[3], json.loads(r[5]))
                    if tid is not None:
                        row = vdb.execute("SELECT id, ? , variant, optimizer, schedule, hparams, "
                                          "seed, status FROM trials WHERE id = ?",
                                          (r[1], tid)).fetchone()
                        trials.append((row, evals(vdb, tid)))
            d = pick_and_rerun(variant, trials, base["budget"], base["step_hint"],
                               os.path.join(var_dir, "reruns", "results.db"),
                               os.path.join(var_dir, "reruns"))
            if d:
                derived[variant] = d

    md = os.path.join(ROOT, "workloads", name, "calibration.md")
    new = not os.path.exists(md)
    with open(md, "a") as f:
        if new:
            f.write("# %s: calibration runs\n\nTargets, budget and step_hint set by "
                    "workloads/calibrate.py (AlgoPerf's target-setting protocol, BENCHMARK.md "
                    "section 8, scaled down). Newest last.\n\n" % name)
        f.write("\n".join(report) + "\n")
    print("\n".join(report))
    if a.write:
        write_cfg(cfg_path, derived)
        print("wrote %s" % cfg_path)


def write_cfg(path, derived):
    """Write the derived numbers into the workload's libconfig file: the base's budget,
    step_hint and targets (the first such lines, at the workload group's level) and each
    variant's targets (inside its `{ name = "..."; ...}` entry)."""
    text = open(path).read()
    base = derived.get("")
    if base:
        if "budget" in base:
            text = re.sub(r"^(\s*budget\s*=\s*)[0-9.eE+-]+(\s*;)", r"\g<1>%g\2" % base["budget"],
                          text, count=1, flags=re.M)
            text = re.sub(r"^(\s*step_hint\s*=\s*)[0-9]+(\s*;)",
                          r"\g<1>%d\2" % base["step_hint"], text, count=1, flags=re.M)
        text = re.sub(r"^(\s*targets\s*=\s*\{\s*validation\s*=\s*)[0-9.eE+-]+(\s*;\s*test\s*=\s*)"
                      r"[0-9.eE+-]+", r"\g<1>%.6g\g<2>%.6g" % (base["validation"], base["test"]),
                      text, count=1, flags=re.M)
    for v, d in derived.items():
        if v and d.get("test") is not None:
            text = re.sub(r'(name\s*=\s*"%s"\s*;\s*targets\s*=\s*\{\s*validation\s*=\s*)'
                          r"[0-9.eE+-]+(\s*;\s*test\s*=\s*)[0-9.eE+-]+" % re.escape(v),
                          r"\g<1>%.6g\g<2>%.6g" % (d["validation"], d["test"]), text, count=1)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
