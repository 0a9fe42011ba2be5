"""Losses for a long tail of rare concepts, implemented once, for every Keras network.

* ``"binary_crossentropy"``: the paper's.
* ``"focal"``: Keras' own ``BinaryFocalCrossentropy`` (Lin et al. 2017):
  ``-(1 - p_t) ** gamma * log(p_t)``; ``gamma = 0`` is binary cross-entropy.
* ``"asymmetric"``: :class:`AsymmetricLoss` (Ridnik et al. 2021): focusing
  that is stronger on negatives, whose probabilities are also shifted down
  by a margin, so the many easy negatives of a long tail weigh little.
* ``"soft_f1"``: :class:`SoftF1Loss`, one minus a differentiable per-image
  F1: the official score's own shape.
* :class:`WeightedBinaryCrossentropy`: binary cross-entropy with a weight on
  each concept's positives (``pos_weight``), for rare concepts.
"""

import keras
import numpy as np


def make_loss(loss, pos_weight=None):
    """The Keras loss for a ``loss`` parameter (a name, or any Keras loss as it is)."""
    if pos_weight is not None:
        if loss != "binary_crossentropy":
            raise ValueError(f"pos_weight weighs binary cross-entropy; it cannot be combined "
                             f"with loss={loss!r}.")
        return WeightedBinaryCrossentropy(pos_weight)
    if not isinstance(loss, str):
        return loss
    if loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=2.0)
    if loss == "asymmetric":
        return AsymmetricLoss()
    if loss == "soft_f1":
        return SoftF1Loss()
    return loss  # "binary_crossentropy" or any other name Keras knows


def balanced_pos_weight(positive_counts, n_images, largest=100.0):
    """Each concept's negatives per positive, at least 1 and at most ``largest``."""
    positives = np.maximum(np.asarray(positive_counts, dtype=np.float64), 1.0)
    return np.clip((n_images - positives) / positives, 1.0, largest)


def _clipped(probabilities):
    epsilon = keras.config.epsilon()
    return keras.ops.clip(probabilities, epsilon, 1.0 - epsilon)


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class AsymmetricLoss(keras.losses.Loss):
    """Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021).

    For a positive: ``-(1 - p) ** gamma_pos * log(p)``; for a negative, with
    the shifted probability ``p_m = max(p - clip, 0)``:
    ``-p_m ** gamma_neg * log(1 - p_m)``; averaged over concepts.

    Parameters
    ----------
    gamma_pos : float, default=0.0
    gamma_neg : float, default=4.0
    clip : float, default=0.05
    """

    def __init__(self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, name="asymmetric_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        p = _clipped(y_pred)
        shifted = _clipped(keras.ops.maximum(p - self.clip, 0.0))
        positive = keras.ops.power(1.0 - p, self.gamma_pos) * keras.ops.log(p)
        negative = keras.ops.power(shifted, self.gamma_neg) * keras.ops.log(1.0 - shifted)
        return -keras.ops.mean(y_true * positive + (1.0 - y_true) * negative, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma_pos": self.gamma_pos,
                "gamma_neg": self.gamma_neg, "clip": self.clip}


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class SoftF1Loss(keras.losses.Loss):
    """One minus a soft per-image F1: ``1 - 2 TP / (2 TP + FP + FN)`` with probabilities.

    With ``TP = sum(y p)``, ``FP = sum((1 - y) p)``, ``FN = sum(y (1 - p))``
    over an image's concepts: the official score's per-image F1 made
    differentiable.
    """

    def __init__(self, name="soft_f1_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        true_positive = keras.ops.sum(y_true * y_pred, axis=-1)
        false_positive = keras.ops.sum((1.0 - y_true) * y_pred, axis=-1)
        false_negative = keras.ops.sum(y_true * (1.0 - y_pred), axis=-1)
        f1 = 2.0 * true_positive / (2.0 * true_positive + false_positive + false_negative
                                    + keras.config.epsilon())
        return 1.0 - f1


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with each concept's positives weighted by ``pos_weight``.

    ``-(w y log p + (1 - y) log(1 - p))``, averaged over concepts.

    Parameters
    ----------
    pos_weight : float or sequence of float
        One weight for every concept, or one per concept.
    """

    def __init__(self, pos_weight=1.0, name="weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = (float(pos_weight) if np.ndim(pos_weight) == 0
                           else [float(w) for w in pos_weight])

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        p = _clipped(y_pred)
        weight = keras.ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        losses = weight * y_true * keras.ops.log(p) + (1.0 - y_true) * keras.ops.log(1.0 - p)
        return -keras.ops.mean(losses, axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}
