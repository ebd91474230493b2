"""Two-step ML reconstruction: LSTM peak classifier and CNN cluster counter.

TensorFlow's C++ logging is silenced (level 3) unless TF_CPP_MIN_LOG_LEVEL is already set:
its start-up banners and a harmless tf.data attribute warning would bury ccframe's own
lines; Python-level errors still surface as exceptions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
