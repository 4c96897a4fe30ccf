#!/usr/bin/env bash
# One resumable training job on a lent GPU machine (10 minutes per command, files back
# <= 16 MiB each, 64 MiB carried). Run it from the repo root *on the device*, carrying
#   data/celeba64.npz   the packed training set (`python -m glow_demo pack`, 30 MB; DATA=...
#                       picks another; data/faces64.npz of `pack --celeba-test`, with
#                       950 more people, is 77 MB: over the 64 MiB carry limit as it is,
#                       so carry `scripts/pack_for_device.py`'s 43 MB WebP copy of it)
#   device/model/       the model to continue from, float16 (15 MB): the first time,
#                       `cp weights/glow.* device/model/`; afterwards, the files that
#                       came back from the previous job ($OUT/model/)
# and it writes $OUT/model/glow.safetensors (float16) + glow.json, $OUT/log.jsonl and
# the last sample grid. Bring $OUT/model back into device/model/ and call again to go on.
#
#   bash scripts/device_train.sh [MINUTES=8] [BATCH=64] [TRAIN ARGS...]   (PYTHON=... picks python)
#
# Further arguments go to `glow_demo train`: e.g. a fresh model (no device/model/) with
# bounded coupling scales, `bash scripts/device_train.sh 8 64 --scale-floor 0.2` (pass the
# same arguments on every later call: --init-from insists the configs match).
set -euo pipefail
MINUTES=${1:-8}
BATCH=${2:-64}
EXTRA=("${@:3}")
OUT=${OUT:-out}
DATA=${DATA:-data/celeba64.npz}
INIT=()
[ -f device/model/glow.safetensors ] && INIT=(--init-from device/model)
PY=${PYTHON:-python3}
NPROC=$("$PY" -c "import torch; print(max(1, torch.cuda.device_count()))")
status=0
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m glow_demo train \
  --data "$DATA" --out "$OUT/run" --minutes "$MINUTES" --batch-size "$BATCH" \
  --amp --warmup 100 --val-every 500 --checkpoint-minutes 2 --save-dtype float16 "${INIT[@]}" \
  "${EXTRA[@]}" || status=$?
# Whatever happened, bring back the last checkpointed model: device time is too scarce
# to lose a run's progress to a late failure.
[ -f "$OUT/run/model/glow.safetensors" ] || exit "$status"
mkdir -p "$OUT/model"
cp "$OUT/run/model/"* "$OUT/model/"
cp "$OUT/run/log.jsonl" "$OUT/" 2>/dev/null || true
last=$(ls "$OUT/run/samples/"*.png 2>/dev/null | tail -n 1 || true)
[ -n "$last" ] && cp "$last" "$OUT/samples.png"
rm -rf "$OUT/run"   # checkpoint.pt (optimiser state) is too big to come back
exit "$status"
