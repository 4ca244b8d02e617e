#!/bin/bash
# One lent-GPU call: make half the training mix, train flow-t16pge's recipe (4,000 steps from the
# shipped flow, effect pokes from the start, EMA warm-up), keep the step-2,000 EMA on the way.
# Sent as .devrun/ (git-ignored) with .whl/ and .gl/; .devrun/flow-t16pge-gpu.recipe.yaml was
# flow-t16pge.recipe.yaml with num_workers 14, val_every 1000, checkpoint_every 250 (recipe.yaml here).
# DEVICE=cpu CLIPS_DIV=... STEPS=... runs the same script small here.
set -u
T0=$(date +%s); DEADLINE=${DEADLINE:-560}
DEVICE=${DEVICE:-cuda}; DIV=${CLIPS_DIV:-1}; STEPS=${STEPS:-4000}; MID=${MID:-2000}
W=${W:-/tmp/w}; mkdir -p "$W" "$OUT"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
if [ "$DEVICE" = cuda ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site MUJOCO_GL=egl
  # The ament setup.cfg and pip's isolated builds (no index here) stop an install: register the
  # entry points with egg_info and run from the tree.
  rm -f setup.cfg; python3 setup.py -q egg_info >/dev/null || exit 1
  export PYTHONPATH=$PWD:/tmp/site; mkdir -p /tmp/bin
  printf '#!/bin/sh\nexec python3 -c "import sys; from motion_prior.cli import main; sys.exit(main())" "$@"\n' > /tmp/bin/motion-prior
  chmod +x /tmp/bin/motion-prior; export PATH=/tmp/bin:$PATH
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
  MP=motion-prior; PY=python3
  $MP data generate --help >/dev/null || exit 1
else
  MP=.venv/bin/motion-prior; PY=.venv/bin/python
fi
$PY -c "import torch, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'mujoco', mujoco.__version__)" 2>&1 | tee -a "$OUT/log.txt"
log "data: start"
$MP data generate --out "$W/push" --clips $((6000 / DIV)) --workers 5 --seed 0 > "$W/g1.log" 2>&1 &
$MP data generate --task motion_prior/PushToGoal-v0 --counterfactual --out "$W/cf-push" --clips $((12000 / DIV)) --workers 6 --seed 2000000 > "$W/g2.log" 2>&1 &
$MP data generate --task motion_prior/DoorToAngle-v0 --counterfactual --out "$W/cf-door" --clips $((4000 / DIV)) --workers 2 --seed 3000000 > "$W/g3.log" 2>&1 &
$MP data generate --task motion_prior/PushToGoal-v0 --counterfactual --lead-in 1 --out "$W/cf-lead" --clips $((8000 / DIV)) --workers 3 --seed 4000000 > "$W/g4.log" 2>&1 &
wait
for g in 1 2 3 4; do tail -n 2 "$W/g$g.log" | tee -a "$OUT/log.txt"; done
log "data: done"
left=$(( DEADLINE - ($(date +%s) - T0) - 25 ))
minutes=$($PY -c "print(max($left, 30) / 60)")
log "train: start (stops with a checkpoint after $minutes min)"
$MP train flow --vae models/vae-lever/vae-t16-ft --init motion_prior/models/default/flow \
  --data "$W/push" "$W/push" "$W/cf-push" "$W/cf-door" "$W/cf-lead" --recipe .devrun/flow-t16pge-gpu.recipe.yaml \
  --steps "$STEPS" --out "$W/run" --device "$DEVICE" --max-minutes "$minutes" > "$W/train.log" 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do
  if [ ! -f "$OUT/ema-$MID.safetensors" ] && grep -q "\"step\": $MID," "$W/run/training_state.json" 2>/dev/null; then
    cp "$W/run/model.safetensors" "$OUT/ema-$MID.safetensors" && log "kept the step-$MID EMA"
  fi
  sleep 1
done
wait $pid; log "train: exit $?"
tail -c 1500 "$W/train.log" >> "$OUT/log.txt"
cp "$W/run/model.safetensors" "$OUT/model.safetensors"
$PY - "$W/run" "$OUT/trained.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
state = load_file(f"{sys.argv[1]}/training_state.safetensors")
save_file({k: v.contiguous() for k, v in state.items() if k.startswith("model.")}, sys.argv[2])
PY
tar -C "$W/run" -cf "$OUT/run.tar" config.yaml metrics.jsonl hardware.json recipe.yaml training_state.json
log "done"
