#!/usr/bin/env bash
# Rebuild the shipped reranker xrerank/minilm-scifact from the packaged all-MiniLM-L6-v2 weights.
# Seeded (seed 42 everywhere); needs ../shared/data/scifact (BEIR SciFact) beside the repository.
# On 2 CPU cores: ~5 min to embed the corpus, ~50 min stage 1, ~30-75 min stage 2, ~10 min of evaluation.
#   stage 1: SciFact train claims + weak title -> abstract groups, 1 epoch, new head (lr 1e-3);
#   stage 2: continue on the train claims only, 2 epochs, lr 5e-5, saved as float16;
#            `xrerank train` then picks long_documents, the depth (20, 50 or 100) and the
#            fusion weight on the dev claims.
# The test claims are never used. Usage: bash scripts/build_model.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data}/scifact"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
X=.venv/bin/xrerank
$X train --base all-MiniLM-L6-v2 --data "$DATA" --output build/minilm-scifact \
    --weak-supervision --eval-steps 125 --device cpu --chroma-dir build/chroma
$X train --base build/minilm-scifact --data "$DATA" --output build/minilm-scifact-s2 \
    --no-weak-supervision --epochs 2 --eval-steps 45 --learning-rate 5e-5 --head-learning-rate 5e-5 \
    --device cpu --chroma-dir build/chroma --save-half --dev-depths 50 100
rm -rf xrerank_core/models/minilm-scifact/*
cp build/minilm-scifact-s2/* xrerank_core/models/minilm-scifact/ 2>/dev/null || true
# Evaluate it (the model alone and fused, one pass each), then write its card from the records.
$X eval --dataset "$DATA" --first-stage dense --candidates 20 --chroma-dir build/chroma \
    --collection-name xrerank-train-5183-9da79ee643 --model xrerank/minilm-scifact --fusion zscore --output build/eval/scifact
$X eval --dataset "$DATA" --first-stage dense --candidates 100 --chroma-dir build/chroma \
    --collection-name xrerank-train-5183-9da79ee643 --model xrerank/minilm-scifact --fusion zscore --output build/eval/scifact-top100
$X eval --dataset "${1:-../shared/data}/trec-dl-2019-passage" --first-stage BM25 \
    --model xrerank/minilm-scifact --fusion zscore --output build/eval/dl19
.venv/bin/python scripts/model_card.py --stage1 build/minilm-scifact --stage2 build/minilm-scifact-s2 \
    --scifact build/eval/scifact --dl19 build/eval/dl19 --scifact-deep build/eval/scifact-top100
