#!/usr/bin/env bash
# The whole training of the shipped family, from nothing, on this machine's CPU (2 cores: ~3 h):
# data, tokenizers, CLIP, decoder, caption pre-training, the KL stage, the decoder on the pipeline's own
# captions, export, Models/accm-world.
#
#   bash Training/train_family.sh            # everything (each stage checkpoints under Training/artifacts/)
#   STAGES="kl export" bash Training/train_family.sh   # only some stages, e.g. after an interruption
#
# A stage interrupted by a crash or Ctrl-C continues from its checkpoint with the stage's own --resume
# (see Training/README.md); minutes per stage can be changed through the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv-training/bin/python}
CLIP_MINUTES=${CLIP_MINUTES:-35}
DECODER_MINUTES=${DECODER_MINUTES:-30}
DECODER_VISUAL_MINUTES=${DECODER_VISUAL_MINUTES:-20}
DECODER_PRUNED_MINUTES=${DECODER_PRUNED_MINUTES:-15}
DECODER_PAIRS_MINUTES=${DECODER_PAIRS_MINUTES:-8}
DECODER_CONSOLIDATE_MINUTES=${DECODER_CONSOLIDATE_MINUTES:-11}
PRETRAIN_MINUTES=${PRETRAIN_MINUTES:-22}
KL_MINUTES=${KL_MINUTES:-11}
DECODER_PIPELINE_MINUTES=${DECODER_PIPELINE_MINUTES:-25}
STAGES=${STAGES:-"venv data tokenizers clip decoder pretrain kl pipeline export"}

has() { [[ " $STAGES " == *" $1 "* ]]; }
stage() { echo; echo "=== $1 ($(date +%H:%M:%S))"; }

if has venv; then
    stage "Python environment ($PYTHON)"
    if [ ! -x "$PYTHON" ]; then python3 -m venv "$(dirname "$(dirname "$PYTHON")")"; fi
    # torch's CPU-only build (Training/requirements.txt pins torch==2.13.0+cpu)
    "$PYTHON" -m pip install --quiet -r Training/requirements.txt
fi
if has data; then stage "world: train / validation splits"; "$PYTHON" Training/make_dataset.py --splits train validation; fi
if has tokenizers; then stage "tokenizers"; "$PYTHON" Training/make_tokenizers.py; fi
if has clip; then stage "CLIP"; "$PYTHON" Training/train_clip.py --minutes "$CLIP_MINUTES"; fi
if has decoder; then
    # first the default mixture (it learns to read captions), then a new schedule weighted to image-only
    # questions, in smaller batches (where the shipped decoder learnt to find objects in the image)
    stage "decoder (LLaVA): mixed"; "$PYTHON" Training/train_decoder.py --minutes "$DECODER_MINUTES"
    stage "decoder (LLaVA): visual"
    "$PYTHON" Training/train_decoder.py --resume --restart-schedule --minutes "$DECODER_VISUAL_MINUTES" \
        --batch 32 --visual 0.7 --text 0.1
    # then 40% single questions over pruned patch sets (the answer's evidence among 1-2 other objects, or the
    # question's caption over random patches, or the evidence and a misleading caption), as behind a pruner
    stage "decoder (LLaVA): pruned"
    "$PYTHON" Training/train_decoder.py --resume --restart-schedule --minutes "$DECODER_PRUNED_MINUTES" \
        --batch 32 --lr 3e-4 --warmup 50 --pruned 0.4 --pruned-caption 0.6 --visual 0.7 --text 0.1
    # then colour and shape questions over the asked object and one other (where it learns to find an object by
    # its shape), and the pruned schedule again to bring back the kinds that stage forgets
    stage "decoder (LLaVA): pairs"; "$PYTHON" Training/train_pairs.py --minutes "$DECODER_PAIRS_MINUTES"
    stage "decoder (LLaVA): pruned, again"
    "$PYTHON" Training/train_decoder.py --resume --restart-schedule --minutes "$DECODER_CONSOLIDATE_MINUTES" \
        --batch 32 --lr 3e-4 --warmup 50 --pruned 0.4 --pruned-caption 0.6 --visual 0.7 --text 0.1
fi
if has pretrain; then stage "caption pre-training"; "$PYTHON" Training/train_captioner.py pretrain --minutes "$PRETRAIN_MINUTES"; fi
if has kl; then stage "KL stage (caption model + selector)"; "$PYTHON" Training/train_captioner.py kl --minutes "$KL_MINUTES"; fi
if has pipeline; then
    # the decoder meets the questions as `accm ask` puts them: the ACCM pruner's kept patches and the caption
    # model's (selected) caption, with the true answer; it learns how far those captions hold, kind by kind
    stage "the pipeline's captions of train questions"; "$PYTHON" Training/train_captioner.py captions
    stage "decoder (LLaVA): the pipeline's inputs"
    "$PYTHON" Training/train_decoder.py --resume --restart-schedule --minutes "$DECODER_PIPELINE_MINUTES" \
        --batch 32 --lr 3e-4 --warmup 50 --pipeline 0.6 --pruned 0.2 --pruned-caption 0.6 --visual 0.7 --text 0.1
fi
if has export; then
    stage "export + Models/accm-world"
    "$PYTHON" Training/train_captioner.py export
    "$PYTHON" Training/assemble.py
fi
stage "done: evaluate with  swift build -c release && .build/release/accm eval"
