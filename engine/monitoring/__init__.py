"""Layer 5: drift, batch and log monitors, live performance, alerts."""
