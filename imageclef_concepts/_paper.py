"""The MacUni-CSIRO ImageCLEF 2019 system's settings, in one place and without TensorFlow.

``ConceptCNNClassifier``'s defaults, the network builder, the paper's
reproduction and the command line's help all read them from here, so that
``imageclef-concepts train --help`` shows the defaults without importing
TensorFlow. Where the paper gives no value, the setting is ours and says so
(see the fidelity table in the user guide).
"""

# The network.
IMAGE_SIZE = 400
FILTERS = (16, 32, 64, 128)
KERNEL_SIZE = 5  # the paper states 5 x 5 for the first block; the same later is ours
CONV_DROPOUT = 0.25
DENSE_UNITS = (128, 64)  # ours: the paper does not give the hidden layers' sizes
DENSE_DROPOUT = 0.5  # ours

# Training.
LEARNING_RATE = 1e-4
DECAY = 1e-6  # legacy Keras time-based decay per step
BATCH_SIZE = 32
EPOCHS = 10
MONITOR = "val_binary_accuracy"  # how the paper picked the best epoch

# Prediction and the outcome.
THRESHOLD = 0.1
TEST_F1 = 0.1435
