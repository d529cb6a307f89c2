#!/usr/bin/env bash
# Rebuild the best candidate for the next shipped reranker (issue 5, not shipped): the cross-fitted
# recipe "xfit2" of benchmarks/RESULTS.md ("Cross-fitting with every stage holding out the dev folds").
# It writes build/minilm-scifact-xfit2 and its two test evaluations; the shipped model is untouched.
#
#   0. mine the dense first stage once (Chroma + the packaged all-MiniLM-L6-v2) for every train claim
#      and paper title, as a TREC run (skipped when RUN names an existing run file);
#   1. stage 1 from all-MiniLM-L6-v2: train claims + title -> abstract groups, 300 claims held out
#      (split seed 42), so no stage ever trains on a claim it is later chosen on;
#   2. three stage-2 runs (4 epochs, lr 5e-5, seeds 42/43/44), run k holding out the k-th block of 100
#      of those 300 claims;
#   3. their weight average; each block is scored by the run that held it out, and the long-document
#      mode, the depth (20/50/100) and the fusion weight are chosen on the 300 claims together;
#   4. the test evaluations the issue asks for (SciFact dense top-100, DL19 BM25), once.
#
# Seeded; the test claims are never trained or chosen on. Times: one H200 ~5 min for 1-3 (DEVICE=cuda);
# this project's 2-core CPU ~2.5 h for 1-3 and ~45 min for 4.
# Usage: [DEVICE=cpu|cuda] [BF16=1|0] [RUN=file.run.gz] [EVAL=1|0] [SENTENCES=N] bash scripts/build_model_xfit.sh [DATA_DIR]
# SENTENCES=N (default 0) adds N inverse-cloze groups per corpus document to stage 1 (--weak-sentences N:
# a sentence of an abstract is the query, the rest of the abstract the positive), mined into its own run
# file, with its own folders (build/xfit2-sN-*) and output (build/minilm-scifact-xfit2-sN). Not run in full
# (stage 1 then has about twice the groups of SENTENCES=0 at N=1); a 100-step probe found such sentences teach
# far less about claims than titles do (benchmarks/RESULTS.md, "Which weak supervision carries over"). On this
# 2-core CPU, stage 1 measured 12.6 s a step in bf16 on an AMD EPYC (6 steps, 2026-11-26), so the SENTENCES=0
# recipe needs about 4 h here.
# A smoke run of the plumbing (a meaningless model; 40 min here on 2 cores shared with other jobs, 2026-11-26:
# 8 for the Chroma store and mining, the rest mostly scoring the 300 dev claims before and after each run):
#   EXTRA="--max-steps 2 --dev-candidates 5" DEPTHS="" EVAL=0 OUT=build/xfit2-smoke bash scripts/build_model_xfit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${1:-../shared/data}"
DATA="$SHARED/scifact"
DEVICE="${DEVICE:-cpu}"
SENTENCES="${SENTENCES:-0}"
TAG=xfit2
SENT_ARGS=()
if [ "$SENTENCES" != 0 ]; then TAG="xfit2-s$SENTENCES"; SENT_ARGS=(--weak-sentences "$SENTENCES"); fi
RUN="${RUN:-build/runs/scifact-train100${TAG#xfit2}.run.gz}"
OUT="${OUT:-build/minilm-scifact-$TAG}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
X=.venv/bin/xrerank
PREC=()
if [ "${BF16:-1}" = 1 ]; then PREC=(--bf16); fi
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
read -r -a DEPTH_ARGS <<< "${DEPTHS-50 100}"

if [ ! -f "$RUN" ]; then
    $X train --base all-MiniLM-L6-v2 --data "$DATA" --output "build/$TAG-mine" --weak-supervision "${SENT_ARGS[@]}" \
        --dev-queries 300 --split-seed 42 --dev-depths 50 100 --save-run "$RUN" --mine-only \
        --chroma-dir build/chroma
fi
$X train --base all-MiniLM-L6-v2 --data "$DATA" --output "build/$TAG-stage1" --weak-supervision "${SENT_ARGS[@]}" \
    --eval-steps 75 --dev-queries 300 --split-seed 42 --device "$DEVICE" --run-file "$RUN" \
    "${PREC[@]}" "${EXTRA_ARGS[@]}"
for k in 0 1 2; do
    $X train --base "build/$TAG-stage1" --data "$DATA" --output "build/$TAG-fold$k" --no-weak-supervision \
        --epochs 4 --eval-steps 51 --learning-rate 5e-5 --head-learning-rate 5e-5 --save-half \
        --seed $((42 + k)) --split-seed 42 --dev-fold "$k" --device "$DEVICE" --run-file "$RUN" \
        "${PREC[@]}" "${EXTRA_ARGS[@]}"
done
$X average --output "$OUT" --dev-depths "${DEPTH_ARGS[@]}" --device "$DEVICE" "build/$TAG-fold0" "build/$TAG-fold1" "build/$TAG-fold2"

if [ "${EVAL:-1}" = 1 ]; then
    # the collection `xrerank train` mines from (built here if missing): the model card's first stage, 0.6451
    $X eval --dataset "$DATA" --first-stage dense --candidates 100 --chroma-dir build/chroma \
        --collection-name xrerank-train-5183-9da79ee643 \
        --model "$OUT" --fusion zscore --output "build/eval/$TAG-scifact-top100"
    $X eval --dataset "$SHARED/trec-dl-2019-passage" --first-stage BM25 \
        --model "$OUT" --fusion zscore --output "build/eval/$TAG-dl19"
fi
