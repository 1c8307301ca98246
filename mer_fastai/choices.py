"""The named values that options accept, in a module without heavy imports.

The command line lists them in its help texts, which must show without importing torch or fastai; the
modules that act on a value import its tuple from here, so each list is declared once.
"""

from __future__ import annotations

MODES = ("freeze", "whole", "partial")  # learner: which layers learn (partial: the body's last stage and the head)
PARTIAL = MODES[2]
STUDY_MODES = MODES[:2]  # the modes of the transfer-learning study: a recipe stage's default grid
AUGMENTS = ("none", "specaugment", "study")  # data: training augmentation
AUDIO_AUGMENTS = ("pitch", "stretch", "gain", "noise")  # train --augment-audio-kinds: made on the audio
IN_MEMORY_AUGMENTS = ("none", "specaugment")  # those the in-memory loaders serve (study needs per-image crops)
# train: which epoch's weights a run keeps (cv always keeps the last: its validation fold is its score)
KEEPS = ("best", "last")
# train: the score that picks the kept epoch; auto = the task's main score (accuracy, or CCC for regression)
MONITORS = ("auto", "accuracy", "macro_f1", "ccc", "valid_loss")
NORMS = ("arch", "dataset")  # data: input normalisation statistics (the architecture's, or the training images')
LOSSES = ("auto", "mse", "ccc")  # train: regression loss (auto = mse); classification always uses cross-entropy
# train: which musicnn layer the frozen body hands the head (per 3 s patch): the 200-unit penultimate layer, the
# mid-end's max and mean over time (1506), the 50 tag probabilities, or the pooled and penultimate layers side by side
LAYERS = ("penultimate", "pooled", "tags", "pooled+penultimate")
# train --head: what the head learns from: each window alone (a track: the mean of its windows' outputs), or all of a
# clip's windows at once, pooled (mean, std and max over its windows' features: `models.track_head`)
HEADS = ("window", "track")
TRACK_POOLING = "mean+std+max"  # the track head's pooling (attention lost on the artist folds: BENCHMARKS.md)
AGGREGATES = ("mean", "vote", "max")  # predict, evaluate, train: track label from windows (scoring.scores.aggregate)
FORMATS = ("json", "csv")  # predict: output formats
# predict, evaluate, embed, train (the freeze-mode feature cache): the arithmetic of the network; auto = the fastest
# that passed its check against fp32 (models.precision)
PRECISIONS = ("auto", "fp32", "bf16", "int8")
EXECUTORS = ("local", "ray")  # runner: where the cells of a recipe run
GAN_BACKENDS = ("diffaug", "stylegan2-ada")  # gan: how the GAN is trained
# train: the named starting weights (the architecture's own pretrained weights — ImageNet, or musicnn's MSD/MTT —
# ImageNet's, none); any other --weights is a model file or run folder
PRETRAINED, IMAGENET, NONE = "pretrained", "imagenet", "none"
STARTING_WEIGHTS = (PRETRAINED, IMAGENET, NONE)
# baseline: the classic estimators (linear: logistic regression, ridge for regression targets)
CLASSIFIERS = ("svm", "knn", "random_forest", "extra_trees", "linear")
# baseline --features: the feature sets (joined with "+"); --layer: the probed layer of the musicnn sets
FEATURE_SETS = ("handcrafted", "melodic", "musicnn-msd", "musicnn-mtt")
PROBE_LAYERS = ("penultimate", "pooled", "tags")
