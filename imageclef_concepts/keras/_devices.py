"""Where and how a network computes: threads, several devices, mixed precision.

* :func:`apply_thread_limit`: TensorFlow's intra- and inter-op threads of
  this process, so that several worker processes on one machine do not
  oversubscribe its cores (the rule: workers x threads <= cores).
* :func:`strategy_for`: a ``tf.distribute`` strategy by name, in whose scope
  the estimator builds and compiles its network; Keras then splits every
  batch across the replicas.
* :func:`dtype_policy`: Keras' mixed precision for the layers built inside,
  leaving the global policy as it was.
"""

import warnings
from contextlib import contextmanager

import keras

DISTRIBUTIONS = ("mirrored", "multi_worker_mirrored")
DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def apply_thread_limit(n_threads):
    """Limit TensorFlow to ``n_threads`` threads in this process (None: leave it).

    TensorFlow fixes its thread pools when its runtime starts; a limit that
    comes later cannot be applied, and a warning says so.
    """
    if n_threads is None:
        return
    import tensorflow as tf

    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads() == n_threads
            and threading.get_inter_op_parallelism_threads() == n_threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError:
        warnings.warn(f"n_threads={n_threads} cannot be applied: TensorFlow already started "
                      "in this process with other thread settings. Set n_threads before "
                      "TensorFlow's first use in the process (a fresh worker applies it at "
                      "its first fit).", RuntimeWarning, stacklevel=3)


def strategy_for(distribution):
    """The ``tf.distribute`` strategy of a ``distribution`` parameter."""
    import tensorflow as tf

    if distribution is None:
        return tf.distribute.get_strategy()  # the default: one device, no-op scope
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


@contextmanager
def dtype_policy(name):
    """Build layers under Keras' ``name`` dtype policy; restore the global one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
