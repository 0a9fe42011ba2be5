"""ConceptCNNClassifier's defaults, in one place and without TensorFlow.

Mostly the MacUni-CSIRO ImageCLEF 2019 system's settings; where the paper
gives no value, the setting is ours and says so (see the fidelity table in
the user guide). The rule: the default of the estimator's parameter
``name`` is ``NAME`` here whenever anything besides the estimator reads it.
The estimator's signature reads these (its defaults *are* these values), and
so do the network builders, the paper's reproduction and the command line's
help, which shows them without importing TensorFlow. A test checks that
every default the command line shows is the signature's. An option's value
is ``Final``, so that type checkers read it as the option it is.
"""

from typing import Final

# The network.
IMAGE_SIZE = 400
FILTERS = (16, 32, 64, 128)
KERNEL_SIZE = 5  # the paper states 5 x 5 for the first block; the same later is ours
PADDING: Final = "valid"  # ours: the paper does not say; Keras' default
CONV_DROPOUT = 0.25
DENSE_UNITS = (128, 64)  # ours: the paper does not give the hidden layers' sizes
DENSE_DROPOUT = 0.5  # ours
BACKBONE: Final = "paper"  # the network above, not a pretrained one
# Ours, for a pretrained backbone (the paper has none):
WEIGHTS: Final = "imagenet"
POOLING: Final = "avg"

# Training.
LOSS = "binary_crossentropy"
OPTIMIZER = "adam"
LEARNING_RATE = 1e-4
DECAY = 1e-6  # legacy Keras time-based decay per step
BATCH_SIZE = 32
EPOCHS = 10
MONITOR = "val_binary_accuracy"  # how the paper picked the best epoch (not our default)

# Images.
ON_ERROR: Final = "raise"  # ours: an unreadable image file stops training, naming the file

# Prediction and the outcome.
THRESHOLD = 0.1
TEST_F1 = 0.1435
