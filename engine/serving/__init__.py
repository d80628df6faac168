"""Serving: the champion over OIP v2 and MLflow scoring, with a prediction log."""
