"""A training whose loss becomes NaN or infinite stops with an error, not a silent empty model."""

import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier

X = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
Y = ["C1", "C1;C2", "C2", "C1", "C2", "C1;C2", "C1", "C2"]
TINY = dict(image_size=16, filters=(4,), dense_units=(8,), epochs=1, random_state=0,
            verbose=0, validation_fraction=None)


def test_the_guard_stops_a_diverging_keras_fit_naming_epoch_batch_and_causes():
    import keras

    from imageclef_concepts.keras._nan_guard import NaNGuard, TrainingDivergedError

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    with pytest.raises(TrainingDivergedError,
                       match=r"loss became (nan|inf) at epoch 1, batch 1.*learning rate "
                             r"\(1e\+30\).*sample_weight.*pos_weight"):
        model.fit(np.ones((4, 1)), np.full((4, 1), 1e30), epochs=2, batch_size=4, verbose=0,
                  callbacks=[NaNGuard()])


def test_a_validation_loss_that_is_not_finite_is_caught_at_the_epoch_end():
    from imageclef_concepts.keras._nan_guard import NaNGuard, TrainingDivergedError

    guard = NaNGuard()
    guard.on_epoch_end(2, {"loss": 0.5, "val_loss": 0.7, "val_accuracy": float("nan")})
    with pytest.raises(TrainingDivergedError, match="val_loss became nan at the end of "
                                                    "epoch 3"):
        guard.on_epoch_end(2, {"loss": 0.5, "val_loss": float("nan")})
    guard.on_train_batch_end(0, {"loss": 0.3})  # finite: nothing happens


@pytest.mark.parametrize("kwargs, fit_kwargs", [
    (dict(learning_rate=1e30), {}),
    (dict(batch_size=2), dict(sample_weight=[3e38] * len(X))),
])
@pytest.mark.slow
def test_the_estimator_with_the_guard_refuses_a_diverged_training(kwargs, fit_kwargs):
    from imageclef_concepts.keras._nan_guard import NaNGuard, TrainingDivergedError

    # The guard is given here as a user callback; wired into the estimator's own
    # callbacks, the estimator raises this without it.
    model = ConceptCNNClassifier(**TINY, **kwargs, callbacks=[NaNGuard()])
    with pytest.raises(TrainingDivergedError,
                       match="Training diverged: the .* became (nan|inf) at"):
        model.fit(X, Y, **fit_kwargs)


def test_the_estimator_refuses_a_diverged_training_by_itself():
    from imageclef_concepts.keras._nan_guard import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="Training diverged"):
        ConceptCNNClassifier(**TINY, learning_rate=1e30).fit(X, Y)
