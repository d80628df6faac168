"""Layer 6: train, retrain, reproduce, and intake (the stage-to-stage calls)."""
