"""Self-contained demonstrations that need no download (``lstmkit demo ...``).

- :mod:`lstmkit.demos.memory`: why LSTMs exist — SimpleRNN vs GRU vs LSTM on a long-range memory
  task (the adding problem or the copy task), with learning curves and the vanishing-gradient
  picture ``||dL/dx_t||`` against the distance from the loss.
"""
