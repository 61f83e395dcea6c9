#!/usr/bin/env bash
# The prepared measurement for the lent GPU machine (one `run` call of the device tool):
#
#   bash ../shared/gpu/make-bundle.sh                       # here, once: fills .gpu/
#   device run, carry [".gpu"], timeout_s 600:
#     source .gpu/setup.sh && STAGE=bench bash benchmarks/gpu-check.sh
#
# STAGE picks what to run so each call fits the 10-minute limit:
#   bench    fast paths vs the reference loop and graph vs eager (gpu_equivalence.py), then
#            raybench bench at the paper preset (all solvers + the reference loops), eager
#            and with cuda_graph=true
#   paper    raybench run --solvers all --preset paper on one GPU through Ray (timed),
#            then report (markdown), plots, fidelity from its checkpoints and scaling
#   serial   the same runs one after another (--max-concurrent 1), for the comparison
#   sweep    a small sweep of every solver sharing the GPU
# EXTRA adds options to the runs, e.g. EXTRA="--set cuda_graph=true" once bench has shown
# the graphed step is equal and faster. Everything lands in $OUT (at most 8 files come back): logs, the report, and the store
# as one tarball. Record every figure with the card in benchmarks/RESULTS.md.
# The training command of paper/serial/sweep is stopped like Ctrl-C after RUN_LIMIT seconds
# (default 420), leaving time for the report and the tarball. If that cuts the runs, call
# the same stage again while the machine is warm: the store stays in /tmp/raybench-store and
# `run` goes on from each run's last evaluation point (its wall time adds up the segments).
set -uo pipefail
OUT=${OUT:-/tmp/raybench-out}
STORE=/tmp/raybench-store
mkdir -p "$OUT" "$STORE"
export PYTHONUNBUFFERED=1
rb() { python3 -m raybench "$@"; }
limited() { timeout -s INT -k 30 "${RUN_LIMIT:-420}" python3 -m raybench "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
case "${STAGE:-bench}" in
  bench)
    python3 benchmarks/gpu_equivalence.py 2>&1 | tee "$OUT/equivalence.log"
    rb bench --preset paper --out "$STORE" 2>&1 | tee "$OUT/bench.log"
    rb bench --preset paper --set cuda_graph=true --no-reference --out "$STORE" 2>&1 | tee "$OUT/bench-graph.log"
    ;;
  paper)
    start=$(date +%s)
    limited run --solvers all --preset paper ${EXTRA:-} --out "$STORE" -e paper 2>&1 | tail -n 60 | tee "$OUT/paper.log"
    echo "wall time of run --solvers all --preset paper: $(( $(date +%s) - start )) s" | tee -a "$OUT/paper.log"
    rb report paper --out "$STORE" --format markdown > "$OUT/report.md"
    rb plot paper --out "$STORE" 2>&1 | tail -n 20 | tee "$OUT/plots.log"
    rb fidelity --from paper --out "$STORE" -e paper 2>&1 | tail -n 80 | tee "$OUT/fidelity.log"
    rb scaling --out "$STORE" -e paper 2>&1 | tail -n 40 | tee "$OUT/scaling.log"
    ;;
  serial)
    start=$(date +%s)
    limited run --solvers all --preset paper ${EXTRA:-} --max-concurrent 1 --out "$STORE" -e serial 2>&1 | tail -n 30 | tee "$OUT/serial.log"
    echo "wall time one after another: $(( $(date +%s) - start )) s" | tee -a "$OUT/serial.log"
    ;;
  sweep)
    start=$(date +%s)
    limited sweep --solvers all --preset paper --trials 4 --steps 200 --seeds 1 --final-steps 500 --out "$STORE" -e sweep 2>&1 | tail -n 60 | tee "$OUT/sweep.log"
    echo "wall time of the sweep: $(( $(date +%s) - start )) s" | tee -a "$OUT/sweep.log"
    ;;
esac
tar czf "$OUT/store.tgz" -C /tmp raybench-store 2>/dev/null || true
