"""The position map regression network (PyTorch): network, loss, data, training, evaluation, prediction."""
