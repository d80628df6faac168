"""engine/pipeline: the training run and its gates, retrain, reproduce."""
