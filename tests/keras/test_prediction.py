"""What a fitted network computes is checked against this machine's memory before any image."""

import keras
import numpy as np
import pytest


def test_a_network_whose_activations_exceed_memory_is_refused_before_any_image(monkeypatch):
    # check_memory counts a backbone's input batch only: DenseNet121 at 20000 px with
    # batch_size=1 passed it, and TensorFlow failed out of memory (embed, train, predict).
    from types import SimpleNamespace

    from imageclef_concepts.files import _sizes
    from imageclef_concepts.keras._prediction import check_network_memory

    inner = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(8, 3, padding="same")])
    network = keras.Sequential([keras.Input((64, 64, 3)), inner, keras.layers.Flatten()])
    estimator = SimpleNamespace(image_size=64, batch_size=4)
    # The convolution inside outputs 64 x 64 x 8 float32 values an image: 128 KiB; the
    # input batch is 64 x 64 x 3 x 5 bytes an image (uint8 and float32): 60 KiB.
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 1_200_000)
    with pytest.raises(ValueError, match=r"^image_size=64 and batch_size=4: running the "
                                         r"network on a batch of 4 image\(s\) \(its input "
                                         r"batch, uint8 and float32, and 4 times its largest "
                                         r"layer output, live at once\) takes 2.2 MiB"):
        check_network_memory(estimator, network, training=False)
    check_network_memory(estimator, network, n_images=2, training=False)  # 1.1 MiB: fits
    check_network_memory(estimator, network, n_images=2)  # 632 KiB: fits
    with pytest.raises(ValueError, match=r"^image_size=64 and batch_size=4: training the "
                                         r"network on a batch of 4 image\(s\) \(its input "
                                         r"batch, uint8 and float32, and its layers' outputs, "
                                         r"kept for the gradients\) takes 1.2 MiB"):
        check_network_memory(estimator, network)  # the conv's and Flatten's


@pytest.mark.parametrize("inner", ["attention", "pipeline", "spectrogram"])
def test_what_a_network_computes_beyond_its_layers_outputs_is_counted(monkeypatch, inner):
    # The outputs of a network's layers do not bound what it computes: an attention's scores
    # are its length squared (a 48 KB .keras, one Reshape to 25,600 positions, took 2.6 GB
    # to predict one 160 px image; 512 px: 256 GiB), a spectrogram's STFT is 1,000 times its
    # output here, and the layers inside a Pipeline had none counted. Such networks are
    # traced in a graph (nothing run), their largest tensor counted.
    from types import SimpleNamespace

    from imageclef_concepts.files import _sizes
    from imageclef_concepts.keras._prediction import check_network_memory

    inputs = keras.Input((64, 64, 3))
    if inner == "attention":  # its scores: 4096 x 4096 float32 values, 64 MiB
        x = keras.layers.Reshape((64 * 64, 3))(inputs)
        x = keras.layers.MultiHeadAttention(num_heads=1, key_dim=1)(x, x)
        x = keras.layers.GlobalAveragePooling1D()(x)
    elif inner == "spectrogram":  # its STFT: 193 frames of 32,769 float32 values, 48 MiB
        x = keras.layers.Reshape((64 * 64 * 3,))(inputs)
        x = keras.layers.MelSpectrogram(fft_length=2**16, sequence_stride=64,
                                        sequence_length=2**16, num_mel_bins=2)(x)
        x = keras.layers.Flatten()(x)
    else:  # 64 x 64 x 3 upsampled 32 times a side: 48 MiB
        x = keras.layers.Pipeline([keras.layers.UpSampling2D(32),
                                   keras.layers.GlobalAveragePooling2D()])(inputs)
    network = keras.Model(inputs, keras.layers.Dense(3)(x))
    estimator = SimpleNamespace(image_size=64, batch_size=1)
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2**25)  # 32 MiB
    with pytest.raises(ValueError, match=r"^image_size=64: running the network on a batch "
                                         r"of 1 image\(s\)"):
        check_network_memory(estimator, network, training=False)
    with pytest.raises(ValueError, match=r"^image_size=64: training the network"):
        check_network_memory(estimator, network)


def test_an_image_preprocessing_layer_whose_work_exceeds_its_output_is_counted(monkeypatch):
    # Keras' image preprocessing layers were trusted wholesale as bounded by their outputs:
    # a contrast-limited adaptive histogram equalization makes a 256-wide one-hot of every
    # pixel value, 256 times its output (a 33 KB .keras at 128 px: 0.19 MiB an image counted,
    # 48 MiB computed; at 512 px and batch_size=32, 96 MiB counted for 24 GiB).
    from types import SimpleNamespace

    from imageclef_concepts.files import _sizes
    from imageclef_concepts.keras._prediction import check_network_memory

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(value_range=(0, 1))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    network = keras.Model(inputs, keras.layers.Dense(3)(x))
    estimator = SimpleNamespace(image_size=64, batch_size=1)
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2**23)  # 8 MiB; outputs: 48 KiB
    with pytest.raises(ValueError, match=r"^image_size=64: running the network on a batch "
                                         r"of 1 image\(s\)"):
        check_network_memory(estimator, network, training=False)


def test_a_network_is_traced_once_however_often_it_is_checked(monkeypatch):
    # Every predict and fit traced a network with an attention again (0.05-1.5 s each).
    from types import SimpleNamespace

    from imageclef_concepts.keras import _prediction

    traced = []
    real = _prediction._traced_largest
    monkeypatch.setattr(_prediction, "_traced_largest",
                        lambda network: traced.append(network) or real(network))
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Reshape((64, 3))(inputs)
    x = keras.layers.MultiHeadAttention(num_heads=1, key_dim=1)(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    network = keras.Model(inputs, keras.layers.Dense(3)(x))
    other = keras.models.clone_model(network)
    estimator = SimpleNamespace(image_size=8, batch_size=4)
    for checked in (network, network, other, network):
        _prediction.check_network_memory(estimator, checked)
    assert traced == [network, other]
    assert _prediction.largest_computed(network) == 64 * 64 * 4  # its scores, float32


def test_embedding_counts_the_layer_outputs_live_at_once_beside_its_input_batch(monkeypatch):
    # Review 18 F8: embed counted the input batch, or the largest layer output alone, while a
    # layer's inputs, output and work live at once: mobilenetv3small peaked at 4.1 to 4.7
    # times its largest output (1000 to 3000 px), so --image-size 9000 --batch-size 8 was
    # accepted at 9 GiB and needed about 45 GB. A limit above either count alone, below
    # their sum with four largest outputs, is refused now; the message says what it counts.
    from imageclef_concepts import BackboneEmbedding
    from imageclef_concepts.files import _sizes
    from imageclef_concepts.keras._prediction import _activation_values

    embedding = BackboneEmbedding("mobilenetv3small", image_size=64, weights=None, batch_size=2)
    largest = 2 * max(_activation_values(embedding._network()))
    inputs = 2 * 64 * 64 * 3 * 5  # the uint8 batch and its float32 input
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2 * max(largest, inputs))
    with pytest.raises(ValueError, match=r"^image_size=64 and batch_size=2: running the network "
                                         r"on a batch of 2 image\(s\) \(its input batch, uint8 "
                                         r"and float32, and 4 times its largest layer output"):
        embedding.embed(np.zeros((2, 64, 64, 3), np.uint8))
    monkeypatch.setattr(_sizes, "memory_limit", lambda: inputs + 4 * largest)
    assert embedding.embed(np.zeros((2, 64, 64, 3), np.uint8)).shape[0] == 2
