#!/usr/bin/env bash
# The GPU check of issue 22, in under 8 minutes on one card: the CUDA tests, then the likelihood
# (eager, and the compiled kernels), training, sampling and mixed-precision benchmarks with
# --device cuda; writes benchmarks/results/gpu/gpu_sh.md (the card, the command, a table of the
# steps and each benchmark's output). The first run's report, and how it was made on a machine
# whose Python had torch but no Pyro (a wheel carried in, on PYTHONPATH), are in
# benchmarks/results/gpu/README.md.
#
#   bash benchmarks/gpu.sh              # on a machine with a GPU
#   bash benchmarks/gpu.sh --dry-run    # the same steps on the CPU with tiny sizes, written to a
#                                       # temporary folder: a check that the script runs
#
# Each step has its own time limit (a step over it is reported as timed out, and the script
# goes on); the exit status is 1 when a step failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu.sh [--dry-run]" >&2; exit 2 ;;
esac

if ((dry)); then
  device=cpu
  out=$(mktemp -d)
  likelihood=(--batch 8 --steps 4 --sweep 8 --repeats 1)
  training=(--quick --large-d --pyro-adam)
  sampling=(--quick)
  precision=(--quick --mixed)
  compiled=(--dims 8 --batch 4 --steps 5 --reps 2 --variants stock ours ours-inductor)
  limits=(900 900 900 900 900 900)  # a check that the steps run, on a shared CPU: not the GPU budget
else
  device=cuda
  out=benchmarks/results/gpu
  if ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device visible to torch: use --dry-run on a machine without a GPU" >&2
    exit 2
  fi
  likelihood=(--sweep 16 64 256 1024)
  training=(--threads 1 --large-d --large-dims 1024 4096 --pyro-adam)
  sampling=(--threads 1)
  precision=(--threads 1 --mixed)
  compiled=(--dims 16 64 256 1024 --budget 65)
  # seconds, 8 minutes at most; the first H200 run's steps took 24, 150+, 12, 25 and 15 s (the
  # likelihood's last peak-memory processes were cut at 150 s) and the compiled step's
  # benchmark about 70 s; the tests now also compile the GPU kernel (float64, both forms)
  limits=(100 170 40 50 35 85)
fi
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The CUDA tests: those of tests/test_cuda.py and those named for cuda in the files that have some
# (-k matches the module's name too, so all of tests/test_cuda.py is selected).
cuda_files=$(grep -rl --include='test_*.py' -i cuda tests | grep -v '^tests/test_cuda.py$' | sort)
steps=(tests likelihood training sampling precision compiled)
commands=(
  "python -m pytest -q -p no:cacheprovider -k cuda tests/test_cuda.py $(echo $cuda_files)"
  "python benchmarks/likelihood.py --device $device ${likelihood[*]}"
  "python benchmarks/training.py --device $device ${training[*]}"
  "python benchmarks/sampling.py --device $device ${sampling[*]}"
  "python benchmarks/training_precision.py --device $device ${precision[*]}"
  "python benchmarks/likelihood_compile.py --device $device ${compiled[*]}"
)

status=0
rows=""
for i in "${!steps[@]}"; do
  name=${steps[$i]}
  echo "== $name: ${commands[$i]} (limit ${limits[$i]} s)"
  start=$(date +%s)
  timeout "${limits[$i]}" bash -c "${commands[$i]}" >"$out/$name.txt" 2>&1
  rc=$?
  seconds=$(($(date +%s) - start))
  case $rc in
    0) result=passed ;;
    124) result="timed out"; status=1 ;;
    *) result="failed (exit $rc)"; status=1 ;;
  esac
  tail -n 25 "$out/$name.txt"
  rows+="| $name | $result | $seconds | \`${commands[$i]}\` |"$'\n'
done

card=$(python -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (dry run on CPU)')")
versions=$(python -c "import platform, pyro, torch; print(f'torch {torch.__version__}, pyro {pyro.__version__}, python {platform.python_version()}')")
{
  echo "# GPU check (issue 22)"
  echo
  echo "Card: **$card**; $versions; $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Reproduce with \`bash benchmarks/gpu.sh$( ((dry)) && echo ' --dry-run')\` from the repository root."
  echo
  echo "| step | result | seconds | command |"
  echo "|---|---|---|---|"
  printf "%s" "$rows"
  for name in "${steps[@]}"; do
    echo
    echo "## $name"
    echo
    echo '```text'
    cat "$out/$name.txt"
    echo '```'
  done
} >"$out/gpu_sh.md"
echo "== wrote $out/gpu_sh.md (exit status $status)"
exit $status
