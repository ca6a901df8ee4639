#!/usr/bin/python3
"""Per-step overhead of every optimizer plugin beyond the gradient, on real workloads.

For each optimizer found in the plugin directory, bench_step runs training steps of the
workload exactly as a worker does (loader, libffi calls, host API) and times, beside every
step, the bare gradient of the same batch (host->loss_and_grad), alternating which of the two
goes first. overhead = step - gradient: the optimizer's own work (for SAM that includes its
second gradient; for Shampoo the root recomputations, amortised in the mean). Reported per
step and per million parameters, median and mean over the steps, with each optimizer's
declared defaults, on fmnist_mlp (0.27 M parameters) and its wide variant (1.86 M).

OPENBLAS_CORETYPE: when unset and OpenBLAS would use kernels weaker than the CPU runs, the
script re-executes itself with the value a trainperf host gives its workers (as
bench_fmnist_mlp.py does). Run by hand after building, never by ctest:
    /usr/bin/python3 tests/bench/bench_optimizers.py [--steps 400] [--build build]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def optimizers(trainperf, plugins):
    out = subprocess.run([trainperf, "list", "--plugins", plugins], capture_output=True,
                         text=True, check=True).stdout
    ids = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "optimizer":
            ids.append(parts[0])
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugins", default=None)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--only", default="", help="comma-separated optimizer ids")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "bench_step")
    plugins = a.plugins or os.path.join(ROOT, "plugins")

    if "OPENBLAS_CORETYPE" not in os.environ:
        core = subprocess.run([bench, "--blas-suggest"], capture_output=True,
                              text=True).stdout.strip()
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
            os.execv(sys.executable, [sys.executable] + sys.argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    ids = a.only.split(",") if a.only else optimizers(os.path.join(a.build, "trainperf"), plugins)
    base = os.path.join(ROOT, "workloads", "fmnist_mlp", "fmnist_mlp.cfg")
    with open(base) as f:
        text = f.read()
    wide = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    wide.write(text.replace("hidden_width = 256;", "hidden_width = 1024;", 1))
    wide.close()

    print("OPENBLAS_CORETYPE=%s, %d steps each, declared defaults" %
          (os.environ.get("OPENBLAS_CORETYPE", "(unset)"), a.steps))
    print("| optimizer | workload | params | gradient ms | overhead us/step (median) | "
          "us per M params (median) | us per M params (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cfg, name in ((base, "fmnist_mlp"), (wide.name, "fmnist_mlp wide")):
        for opt in ids:
            r = subprocess.run([bench, "--optimizer", opt, "--hparams", "learning_rate=0.001",
                                "--steps", str(a.steps), "--warmup", "20", "--plugins",
                                plugins, "--workload-config", cfg],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("| %s | %s | failed: %s |" % (opt, name, r.stderr.strip()))
                continue
            j = json.loads(r.stdout)
            mp = j["params"] / 1e6
            print("| %s | %s | %d | %.2f | %.0f | %.0f | %.0f |" % (
                opt, name, j["params"], j["grad_median_s"] * 1e3,
                j["overhead_median_s"] * 1e6, j["overhead_median_s"] * 1e6 / mp,
                j["overhead_mean_s"] * 1e6 / mp))
    os.unlink(wide.name)


if __name__ == "__main__":
    main()
