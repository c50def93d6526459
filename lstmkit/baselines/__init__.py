"""Classic baselines that every own-data run measures beside its model: what a user would
otherwise write in ten lines.

- :mod:`lstmkit.baselines.text`: TF-IDF word and character n-grams + logistic regression
  (scikit-learn), for ``--task text``.

A baseline is fitted on the run's training split only, its settings chosen on the validation
split, and scored on the same validation and test records as the model.
"""
